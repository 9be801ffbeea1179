"""`python -m lsp_server [--tcp HOST:PORT]`: `infill serve` without the `infill` command line's
imports (torch and every subcommand's modules load before `infill serve` can answer), so an
editor's `initialize` is answered in well under a second. Models are configured by
`initializationOptions` (see lsp_server/options.py)."""

import argparse
import sys

from lsp_server.server import serve

parser = argparse.ArgumentParser(
    prog="python -m lsp_server",
    description="The infill language server, on stdio unless --tcp; models are configured by "
                "initializationOptions (lsp_server/options.py).")
parser.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
parser.add_argument("--log-file", help="write the server's log here (default: stderr)")
parser.add_argument("-v", "--verbose", action="store_true", help="log every message")
args = parser.parse_args()
if args.tcp and not args.tcp.rpartition(":")[2].isdigit():
    parser.error(f"--tcp {args.tcp}: use HOST:PORT, e.g. 127.0.0.1:7777")
sys.exit(serve(tcp=args.tcp, log_file=args.log_file, verbose=args.verbose))
