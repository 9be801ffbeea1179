"""`infill trace make|replay|report` (the formats: infill/traces/__init__.py and replay.py).

Nothing here imports torch: the replay drives a server process, which loads the models."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def add_parser(sub) -> None:
    trace = sub.add_parser("trace", help="editor traces: make from files, replay against a "
                                         "server, report latency and acceptance")
    trace_sub = trace.add_subparsers(dest="trace_command", required=True)

    make = trace_sub.add_parser("make", help="a trace of typing or editing real source files")
    make.add_argument("files", nargs="+", type=Path, metavar="FILE")
    make.add_argument("-o", "--out", type=Path, required=True, help="the trace (JSONL)")
    make.add_argument("--speed", type=float, default=120.0, metavar="MS_PER_KEY",
                      help="mean time per key before jitter and pauses (default 120)")
    make.add_argument("--mode", choices=("type", "edit"), default="type",
                      help="type: the file top to bottom; edit: delete a block body and "
                           "retype it, with the rest of the file after it (default type)")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--keys", type=int, metavar="N",
                      help="at most about N keystrokes per file (type: a stretch of the file; "
                           "edit: bodies of at most N keys); default: the whole file / any body")
    make.add_argument("--edits", type=int, default=1, metavar="N",
                      help="edit mode: block bodies retyped per file (default 1)")
    make.set_defaults(run=cmd_make)

    replay = trace_sub.add_parser("replay", help="drive a server over stdio with a trace's timing")
    replay.add_argument("trace", type=Path)
    replay.add_argument("--report", type=Path, required=True, metavar="DIR",
                        help="records.jsonl, summary.json, index.html and plots go here")
    replay.add_argument("--server", metavar="CMD",
                        help="the server command line (default: this Python -m lsp_server)")
    replay.add_argument("--debounce", type=float, default=75.0, metavar="MS",
                        help="client debounce before a request is sent (default 75, as the "
                             "Neovim plugin)")
    replay.add_argument("--options", default="{}", metavar="JSON",
                        help='initializationOptions, e.g. \'{"device": "cpu", "maxTokens": 32}\'')
    replay.add_argument("--ready-timeout", type=float, default=300.0, metavar="S",
                        help="seconds to wait for the models to load (default 300)")
    replay.add_argument("--drain-timeout", type=float, default=30.0, metavar="S",
                        help="seconds to wait for answers after the last event (default 30)")
    replay.set_defaults(run=cmd_replay)

    report = trace_sub.add_parser("report", help="summary.json, index.html and a table from "
                                                 "DIR/records.jsonl")
    report.add_argument("dir", type=Path, metavar="DIR")
    report.set_defaults(run=cmd_report)


class TraceUsageError(Exception):
    """Bad arguments or input: `infill` prints it as one line and exits with status 2."""


def _usage(message: str) -> Exception:
    return TraceUsageError(message)


def cmd_make(args) -> int:
    from infill.traces.format import typed_chars, write_trace
    from infill.traces.make import make_trace

    for path in args.files:
        if not path.is_file():
            raise _usage(f"{path}: no such file")
    if args.keys is not None and args.keys < 1 or args.edits < 1:
        raise _usage("--keys and --edits must be at least 1")
    try:
        events = make_trace(args.files, args.mode, args.speed, args.seed, args.keys, args.edits)
    except UnicodeDecodeError as exc:
        raise _usage(f"not UTF-8 text: {exc}") from None
    except ValueError as exc:
        raise _usage(str(exc)) from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_trace(args.out, events)
    keys, chars = typed_chars(events)
    requests = sum(e["type"] == "request" for e in events)
    print(f"wrote {args.out}: {len(events)} events, {keys} keystrokes ({chars} characters), "
          f"{requests} request events, {events[-1]['t'] / 1000:.1f} s")
    return 0


def cmd_replay(args) -> int:
    import asyncio
    import logging

    from infill.traces.format import TraceError, read_trace
    from infill.traces.replay import ReplayError, replay
    from infill.traces.report import write_report

    try:
        events = read_trace(args.trace)
    except FileNotFoundError:
        raise _usage(f"{args.trace}: no such file") from None
    except TraceError as exc:
        raise _usage(str(exc)) from None
    try:
        options = json.loads(args.options)
    except json.JSONDecodeError as exc:
        raise _usage(f"--options is not JSON: {exc}") from None
    if not isinstance(options, dict):
        raise _usage("--options must be a JSON object")
    command = shlex.split(args.server) if args.server else None
    if command == []:
        raise _usage("--server is empty")
    logging.getLogger("pygls").setLevel(logging.ERROR)  # the server's log goes to DIR/server.log
    print(f"replaying {args.trace} ({events[-1]['t'] / 1000:.1f} s) against "
          f"{args.server or sys.executable + ' -m lsp_server'}", file=sys.stderr)
    try:
        asyncio.run(replay(events, args.report, command, args.debounce, options,
                           trace=str(args.trace), ready_timeout=args.ready_timeout,
                           drain_timeout=args.drain_timeout))
    except ReplayError as exc:
        raise _usage(str(exc)) from None
    write_report(args.report)
    return 0


def cmd_report(args) -> int:
    from infill.traces.report import ReportError, write_report

    try:
        write_report(args.dir)
    except ReportError as exc:
        raise _usage(str(exc)) from None
    return 0


def build_parser() -> argparse.ArgumentParser:
    """`infill trace` alone: what `infill.cli.main` uses for it, so that the other
    subcommands' modules (some import torch) stay unloaded."""
    parser = argparse.ArgumentParser(prog="infill", description="Local fill-in-the-middle code completion.")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser
