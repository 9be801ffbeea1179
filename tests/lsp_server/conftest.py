"""`pytest` (not only `python -m pytest`) from a checkout: the repository root on sys.path.
The helpers live in lsp_client.py, lsp_fakes.py and lsp_inprocess.py."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
