"""The real server over stdio (or --tcp HOST:PORT), with FakeEngines (configured by FAKE_* variables) for models."""

import sys

from lsp_fakes import FakeEngines

from lsp_server.server import serve

tcp = sys.argv[2] if sys.argv[1:2] == ["--tcp"] else None
sys.exit(serve(tcp=tcp, make_engines=FakeEngines.from_env))
