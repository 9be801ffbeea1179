"""The infill language server: standard LSP 3.18 inline completion over the `infill` engines.

    infill serve                 # stdio, what editors start
    infill serve --tcp 127.0.0.1:7777

`server.py` has the features, `scheduler.py` the newest-request-wins scheduling and the model
thread, `documents.py` the incremental document store, `options.py` the configuration.
"""

__version__ = "0.1.0"
