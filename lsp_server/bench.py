"""The server's own overhead per request, model time excluded: `python -m lsp_server.bench`.

The engines are replaced by a zero-latency stand-in, so every millisecond measured is the
server's: JSON-RPC decoding and encoding, the document update, the window of text around the
cursor, the scheduler's hop to the model thread and back, the type-through cache, the reply.

- in-process: messages go straight into the server's protocol object (no pipe): the server's
  own cost, per message kind, on a small file and on a 5 MB one;
- stdio: a real `lsp_server` subprocess driven by a pygls client, keystroke (didChange +
  inlineCompletion) round trips next to a trivial request's (`infill/status`), so the pipe's
  share shows, and the time from spawning the server to its `initialize` answer;
- with --models, end to end: completions over stdio from the real (by default shipped) models
  at --spots line ends of infill/examples/stats.py, automatic and invoked (both engines).

Prints a table and writes JSON (--out). Nothing here asserts a time: see BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from infill.request import Completion
from infill.traces import client as lsp

SMALL = "import os\n\n\ndef main(argv):\n    path = os.path.join(argv[0], 'x')\n    return \n"
BIG_LINE = "    value = compute(alpha, beta)  # ünïcode 😀\n"


class InstantModel:
    def __init__(self, name: str):
        self.name, self.device = name, "cpu"


class InstantEngines:
    """infill.engines.Engines without models: answers at once, after one cancel check."""

    def __init__(self, config):
        self.config = config
        self.ar, self.diffusion = InstantModel("instant-ar"), InstantModel("instant-diffusion")

    def complete(self, request):
        request.cancel.check()
        return [Completion("result(value)", request.engine, "instant", 4, 1, 0.0)]


def summary(samples_ms: list[float]) -> dict:
    ordered = sorted(samples_ms)
    return {"n": len(ordered), "median_ms": round(statistics.median(ordered), 3),
            "p90_ms": round(ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)], 3),
            "mean_ms": round(statistics.fmean(ordered), 3)}


# --- in-process ------------------------------------------------------------------------------

class _Capture:
    """The server's writer: resolves the future of each response."""

    def __init__(self):
        self.waiting: dict = {}

    def write(self, data: bytes) -> None:
        message = json.loads(data)
        future = self.waiting.pop(message.get("id"), None)
        if future is not None:
            future.set_result(message)

    def close(self) -> None:
        pass


async def in_process(iterations: int) -> dict:
    from lsp_server.server import create_server

    server = create_server(make_engines=InstantEngines)
    writer = _Capture()
    server.protocol.set_writer(writer, include_headers=False)
    loop, ids = asyncio.get_running_loop(), iter(range(10**9))

    def deliver(message: dict) -> None:
        body = json.dumps(message)
        server.protocol.handle_message(json.loads(body, object_hook=server.protocol.structure_message))

    async def request(method: str, params) -> dict:
        msg_id = next(ids)
        future = writer.waiting[msg_id] = loop.create_future()
        deliver({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return await future

    def notify(method: str, params) -> None:
        deliver({"jsonrpc": "2.0", "method": method, "params": params})

    await request("initialize", {"processId": None, "rootUri": None, "capabilities": {},
                                 "initializationOptions": {"debounceMs": 0, "logEvents": False}})
    notify("initialized", {})
    while not server.models.ready:
        await asyncio.sleep(0.001)

    results = {}
    big = BIG_LINE * (5_000_000 // len(BIG_LINE))
    for name, text in (("small file", SMALL), ("5 MB file", big)):
        uri = f"file:///bench/{name.replace(' ', '_')}.py"
        notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python",
                                                         "version": 1, "text": text}})
        line = text.count("\n") - 1
        col = len(text.split("\n")[line])
        change_ms, complete_ms, cached_ms = [], [], []
        for i in range(iterations):
            at = {"line": line, "character": col + i}
            started = time.perf_counter()
            notify("textDocument/didChange", {
                "textDocument": {"uri": uri, "version": i + 2},
                "contentChanges": [{"range": {"start": at, "end": at}, "text": "z"}]})
            change_ms.append((time.perf_counter() - started) * 1000)
            params = {"textDocument": {"uri": uri}, "context": {"triggerKind": 2},
                      "position": {"line": line, "character": col + i + 1}}
            started = time.perf_counter()
            await request("textDocument/inlineCompletion", params)
            complete_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await request("textDocument/inlineCompletion", params)  # same spot: the cache
            cached_ms.append((time.perf_counter() - started) * 1000)
        results[f"didChange, {name}"] = summary(change_ms)
        results[f"inlineCompletion, {name}"] = summary(complete_ms)
        results[f"inlineCompletion from the type-through cache, {name}"] = summary(cached_ms)
    server.worker.stop()
    return results


# --- over stdio ------------------------------------------------------------------------------

async def spawn_to_initialize(command: list[str]) -> float:
    """Milliseconds from starting the server process to its `initialize` answer."""
    started = time.perf_counter()
    client = await lsp.spawn(command, name="infill-bench")
    await lsp.initialize(client, {"logEvents": False}, initialized=False)
    elapsed = (time.perf_counter() - started) * 1000
    await lsp.stop(client)
    return elapsed


async def over_stdio(iterations: int) -> dict:
    from lsprotocol import types

    spawn_ms = {
        "spawn to initialize answer: infill serve":
            [await spawn_to_initialize([sys.executable, "-m", "infill.cli", "serve"])
             for _ in range(3)],
        "spawn to initialize answer: python -m lsp_server":
            [await spawn_to_initialize([sys.executable, "-m", "lsp_server"]) for _ in range(3)]}
    client = await lsp.spawn([sys.executable, "-m", "lsp_server.bench", "--serve"], name="infill-bench")
    await lsp.initialize(client, {"debounceMs": 0, "logEvents": False})
    await lsp.wait_ready(client, every=0.01)
    uri = "file:///bench/stdio.py"
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="python", version=1, text=SMALL)))
    line, col = SMALL.count("\n") - 1, 11
    status_ms, keystroke_ms = [], []
    for i in range(iterations):
        started = time.perf_counter()
        await client.protocol.send_request_async("infill/status", {})
        status_ms.append((time.perf_counter() - started) * 1000)
        at = types.Position(line=line, character=col + i)
        started = time.perf_counter()
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=i + 2),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=at, end=at), text="z")]))
        await client.text_document_inline_completion_async(types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=col + i + 1),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic)))
        keystroke_ms.append((time.perf_counter() - started) * 1000)
    await lsp.stop(client)
    return {**{what: summary(ms) for what, ms in spawn_ms.items()},
            "infill/status round trip (the pipe and JSON only)": summary(status_ms),
            "keystroke: didChange + inlineCompletion round trip": summary(keystroke_ms)}


# --- end to end, with the models --------------------------------------------------------------

async def end_to_end(iterations: int, device: str | None) -> dict:
    """Keystroke round trips over stdio with the configured (by default the shipped) models:
    what the user waits for, next to the model time the server measured."""
    from lsprotocol import types

    from infill.cli import EXAMPLE

    client = await lsp.spawn([sys.executable, "-m", "lsp_server"], name="infill-bench")
    await lsp.initialize(client, {"debounceMs": 0, "logEvents": False, "device": device})
    if (info := await lsp.wait_ready(client, every=0.1))["state"] != "ready":
        raise SystemExit(f"models did not load: {info['error']}")
    lines = EXAMPLE.read_text().split("\n")
    spots = [(n, len(line)) for n, line in enumerate(lines) if line.strip()]  # line ends
    uri = EXAMPLE.as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="python", version=1, text="\n".join(lines))))
    round_trip = {"automatic": [], "invoked": []}
    for i in range(iterations):  # a new spot each time: the type-through cache never answers
        line, col = spots[i % len(spots)]
        for kind, trigger in (("automatic", types.InlineCompletionTriggerKind.Automatic),
                              ("invoked", types.InlineCompletionTriggerKind.Invoked)):
            started = time.perf_counter()
            await client.text_document_inline_completion_async(types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=col),
                context=types.InlineCompletionContext(trigger_kind=trigger)))
            round_trip[kind].append((time.perf_counter() - started) * 1000)
    info = await lsp.status(client)
    await lsp.stop(client)
    model_ms = info["requests"]["modelMs"]
    return {f"keystroke round trip, {kind} ({info['device']}, {info['models']})":
            summary(ms) for kind, ms in round_trip.items()} | {
            f"model time per request, server-measured ({info['device']})": {
                "n": model_ms["count"], "median_ms": model_ms.get("median"),
                "p90_ms": model_ms.get("p90"), "mean_ms": None}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lsp_server.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("runs/lsp_bench.json"))
    parser.add_argument("--models", action="store_true",
                        help="also measure end to end with the real (by default shipped) models")
    parser.add_argument("--device", help="for --models: cpu, cuda (default: a GPU if there is one)")
    parser.add_argument("--spots", type=int, default=30,
                        help="for --models: cursor spots, each completed automatically and invoked")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the subprocess
    args = parser.parse_args(argv)
    if args.serve:
        from lsp_server.server import serve

        return serve(make_engines=InstantEngines)

    logging.getLogger("pygls").setLevel(logging.ERROR)  # the client ignores the server's log
    results = {"in-process": asyncio.run(in_process(args.iterations)),
               "stdio": asyncio.run(over_stdio(args.iterations))}
    if args.models:
        results["end to end"] = asyncio.run(end_to_end(args.spots, args.device))
    report = {"benchmark": "lsp_server overhead per request, zero-latency engines",
              "command": "python -m lsp_server.bench " + " ".join(argv or sys.argv[1:]),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                         f"Python {platform.python_version()}", "results": results}
    from rich.console import Console
    from rich.table import Table

    table = Table(title="lsp_server: the server's own time per message (model time excluded)")
    for column in ("where", "what", "median ms", "p90 ms", "mean ms", "n"):
        table.add_column(column, justify="right" if column.endswith(("ms", "n")) else "left")
    for where, rows in results.items():
        for what, s in rows.items():
            table.add_row(where, what, *(f"{s[k]:.3f}" if s[k] is not None else "-"
                                         for k in ("median_ms", "p90_ms", "mean_ms")), str(s["n"]))
    Console(width=140).print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
