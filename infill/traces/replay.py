"""`infill trace replay`: drive a real server over stdio with a trace's own timing, as an editor.

The `Editor` below is the one place that decides when a request goes out and when it is
cancelled, the way the Neovim plugin (editors/nvim/lua/infill/ghost.lua) does it:

- every change goes out at once as `textDocument/didChange` (one per keystroke);
- a trace `request` event starts a debounce timer (`--debounce` ms); a change before it fires
  stops it; when it fires, one `textDocument/inlineCompletion` (trigger Automatic) goes out;
- a change (or opening another document) while a request is in flight sends
  `$/cancelRequest` for it (it is superseded) and its answer, when one comes, is not shown.

One line per request goes to DIR/records.jsonl as soon as its answer arrives (after a first
`replay` line saying what ran, before an `end` line with the server's own counters), so an
interrupted replay still leaves its records, and `infill trace report DIR` needs nothing else.

A request record (latencies in ms from sending the request to receiving its answer):

    {"kind": "request", "id": "r17", "event": 35, "tEvent": 2210.4, "sentMs": 2290.1,
     "latencyMs": 182.3, "outcome": "answered", "superseded": false, "engine": "speculative",
     "lines": "single", "text": "(self):", "chars": 7, "accepted": true, "charsSaved": 7,
     "matched": 7, "uri": "file:///...", "line": 12, "character": 9, "offset": 402}

- outcome: "answered" (before any newer change: the editor shows it), "stale" (an answer that
  came after a newer change: dropped), "cancelled" (the server answered RequestCancelled),
  "error", or "unanswered" (nothing came before the replay ended).
- engine: the server's items do not say which engine made them (an item carries its text, its
  range and an opaque id), so it is inferred here with the server's own routing function
  (`infill.router.choose_engine`, over the engines `infill/status` lists), and "cache" when the
  answer is the rest of the suggestion shown before that the user has typed into since (the
  server's type-through cache gives exactly that). The `end` line has the server's own counts
  (`fromCache`, `stale`, `superseded`, ...) to check the inference against.
- accepted: the first item's text is a prefix of what the user types next at that spot (from
  the trace's later changes, `format.future_typing`); charsSaved is then its length.
"""

from __future__ import annotations

import asyncio
import json
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from infill.traces import client as lsp
from infill.traces.format import Document, after_insert, future_typing, insertion, typed_chars

DEFAULT_SERVER = [sys.executable, "-m", "lsp_server"]
DEFAULT_OPTIONS = {"logEvents": False}
REQUEST_CANCELLED = -32800


class ReplayError(RuntimeError):
    """The server did not start or its models did not load: one line saying why."""


@dataclass
class Sent:
    """A request in flight."""

    id: str
    index: int  # of its request event in the trace
    uri: str
    line: int
    character: int
    offset: int
    sent: float  # loop time
    engine: str  # routed
    superseded: float | None = None  # loop time of the change that made it stale


@dataclass
class Shown:
    """The last suggestion shown in a document, and what the user typed into it since."""

    text: str
    at: tuple[int, int]  # where the cursor is now, if the user only typed on
    typed: str = ""


class Records:
    """DIR/records.jsonl, one JSON object a line, flushed as written."""

    def __init__(self, path: Path):
        self.file: IO[str] = path.open("w", encoding="utf-8")

    def write(self, record: dict) -> None:
        self.file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class Editor:
    def __init__(self, client, events: list[dict], debounce_ms: float, records: Records,
                 engines: list[str], engine_option: str):
        self.client, self.events, self.records = client, events, records
        self.debounce = debounce_ms / 1000
        self.engines, self.engine_option = engines, engine_option
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        self.docs: dict[str, Document] = {}
        self.versions: dict[str, int] = {}
        self.shown: dict[str, Shown] = {}
        self.timer: asyncio.TimerHandle | None = None
        self.in_flight: dict[str, tuple[Sent, asyncio.Future]] = {}
        self.sent = self.request_events = 0

    def ms(self, at: float) -> float:
        return round((at - self.started) * 1000, 1)

    def handle(self, index: int, event: dict) -> None:
        kind = event["type"]
        if kind == "open":
            self.open(event)
        elif kind == "change":
            self.change(event)
        elif kind == "request":
            self.request_events += 1
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_later(self.debounce, self.send, index)

    def open(self, event: dict) -> None:
        uri = event["uri"]
        self.supersede()  # the user moved to another file: what was asked for is off screen
        self.docs[uri], self.versions[uri] = Document(event["text"]), event.get("version", 1)
        self.shown.pop(uri, None)
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=event.get("languageId", ""),
                                                 version=self.versions[uri], text=event["text"])))

    def supersede(self) -> None:
        """Stop the debounce timer and cancel every request in flight, in whichever document:
        the editor has one cursor, and a suggestion for anywhere else is never shown. (The
        server's newest-wins is per document: without the cancel, a request left behind in
        another file would hold the model thread until it finished.)"""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        now = self.loop.time()
        for sent, _ in self.in_flight.values():
            if sent.superseded is None:
                sent.superseded = now
                self.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=sent.id))

    def change(self, event: dict) -> None:
        uri = event["uri"]
        self.supersede()
        self.versions[uri] += 1
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
            content_changes=[_change(c) for c in event["contentChanges"]]))
        for c in event["contentChanges"]:
            self.docs[uri].apply(c)
        self._follow_shown(uri, event)

    def _follow_shown(self, uri: str, event: dict) -> None:
        """Typing on at the shown suggestion's end keeps it (type-through); anything else ends it."""
        shown, found = self.shown.get(uri), insertion(event)
        if shown is None:
            return
        if found is None or (found[0]["line"], found[0]["character"]) != shown.at:
            del self.shown[uri]
            return
        shown.typed += found[1]
        shown.at = after_insert(*shown.at, found[1])

    def send(self, index: int) -> None:
        self.timer = None
        event = self.events[index]
        uri, line, character = event["uri"], event["position"]["line"], event["position"]["character"]
        doc = self.docs[uri]
        self.sent += 1
        sent = Sent(f"r{self.sent}", index, uri, line, character, doc.offset(line, character),
                    self.loop.time(), self.route(doc.line_rest(line, character)))
        future = asyncio.ensure_future(self.client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=character),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Automatic)),
            msg_id=sent.id))
        self.in_flight[sent.id] = (sent, future)
        future.add_done_callback(lambda f, s=sent: self.answered(s, f))

    def route(self, rest_of_line: str) -> str:
        """The engine the server runs for an automatic request here (see the module docstring)."""
        from infill.request import InfillRequest
        from infill.router import choose_engine

        engine = self.engine_option
        if engine == "auto":
            engine = choose_engine(InfillRequest(prefix="", suffix=rest_of_line))
        if self.engines and engine not in self.engines:
            engine = self.engines[0] if self.engine_option == "auto" else "none"
        return engine

    def answered(self, sent: Sent, future: asyncio.Future) -> None:
        now = self.loop.time()
        self.in_flight.pop(sent.id, None)
        text, outcome, error = "", "answered", None
        if future.cancelled():
            outcome = "unanswered"
        elif (exc := future.exception()) is not None:
            code = getattr(exc, "code", None)
            outcome = "cancelled" if code == REQUEST_CANCELLED else "error"
            error = None if outcome == "cancelled" else f"{type(exc).__name__}: {exc}"
        else:
            text = _first_text(future.result())
            if sent.superseded is not None:
                outcome = "stale"
        self.records.write(self.record(sent, now, outcome, text, error))

    def record(self, sent: Sent, now: float, outcome: str, text: str, error: str | None) -> dict:
        engine, accepted, matched = sent.engine, False, 0
        if outcome == "answered":
            shown = self.shown.get(sent.uri)
            if text and shown is not None and shown.text.startswith(shown.typed) \
                    and text == shown.text[len(shown.typed):]:
                engine = "cache"  # the rest of what was on screen: the server's type-through
            elif text:
                self.shown[sent.uri] = Shown(text, (sent.line, sent.character))
            else:
                self.shown.pop(sent.uri, None)
            future = future_typing(self.events, sent.index)
            matched = _common_prefix(text, future)
            accepted = bool(text) and matched == len(text)
        record = {"kind": "request", "id": sent.id, "event": sent.index,
                  "tEvent": self.events[sent.index]["t"], "sentMs": self.ms(sent.sent),
                  "latencyMs": None if outcome == "unanswered" else round((now - sent.sent) * 1000, 2),
                  "outcome": outcome, "superseded": sent.superseded is not None,
                  "supersededAfterMs": None if sent.superseded is None
                  else round((sent.superseded - sent.sent) * 1000, 2),
                  "engine": engine, "lines": "multi" if "\n" in text else "single" if text else "empty",
                  "text": text, "chars": len(text), "accepted": accepted,
                  "charsSaved": len(text) if accepted else 0, "matched": matched, "uri": sent.uri,
                  "line": sent.line, "character": sent.character, "offset": sent.offset}
        if error:
            record["error"] = error
        return record

    async def finish(self, timeout: float) -> int:
        """Let the last debounce fire and the requests in flight answer; returns how many did not."""
        if self.timer is not None:
            await asyncio.sleep(self.debounce + 0.01)
        deadline = self.loop.time() + timeout
        while self.in_flight and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
        left = list(self.in_flight.values())
        for _, future in left:
            future.cancel()  # recorded as unanswered by its callback
        await asyncio.sleep(0)
        return len(left)


def _change(change: dict):
    if "range" not in change:
        return types.TextDocumentContentChangeWholeDocument(text=change["text"])
    r = change["range"]
    return types.TextDocumentContentChangePartial(
        range=types.Range(start=types.Position(**r["start"]), end=types.Position(**r["end"])),
        text=change["text"])


def _first_text(result) -> str:
    """The first item's text (what an editor shows), at the cursor."""
    items = getattr(result, "items", result) or []
    if not items:
        return ""
    text = items[0].insert_text
    return getattr(text, "value", text) or ""


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _machine() -> str:
    import os

    return (f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}")


async def replay(events: list[dict], out_dir: Path, command: list[str] | None = None,
                 debounce_ms: float = 75.0, options: dict | None = None, trace: str = "",
                 ready_timeout: float = 300.0, drain_timeout: float = 30.0) -> dict:
    """Replay the events against the server; returns the end record."""
    command = command or DEFAULT_SERVER
    options = {**DEFAULT_OPTIONS, **(options or {})}
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "server.log").open("wb") as log:
        try:
            client = await lsp.spawn(command, log, name="infill-trace-replay")
        except OSError as exc:
            raise ReplayError(f"cannot start the server {' '.join(command)}: {exc}") from None
        try:
            try:
                await lsp.initialize(client, options)
                info = await lsp.wait_ready(client, ready_timeout)
            except (asyncio.TimeoutError, RuntimeError, JsonRpcException) as exc:
                raise ReplayError(f"the server did not start ({exc}); see {out_dir / 'server.log'}") from None
            if info["state"] != "ready":
                raise ReplayError(f"the server's models are {info['state']}: {info.get('error')}")
            return await _run(client, events, out_dir, command, debounce_ms, options, trace,
                              info, drain_timeout)
        finally:
            await lsp.stop(client)


async def _run(client, events, out_dir, command, debounce_ms, options, trace, info,
               drain_timeout) -> dict:
    records = Records(out_dir / "records.jsonl")
    keys, chars = typed_chars(events)
    records.write({
        "kind": "replay", "trace": trace, "server": command, "debounceMs": debounce_ms,
        "options": options, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(), "device": info.get("device"), "models": info.get("models"),
        "engines": info.get("engines"), "keystrokes": keys, "typedChars": chars,
        "traceMs": events[-1]["t"],
        "documents": [{k: e.get(k) for k in ("uri", "source", "mode", "speedMs", "seed")}
                      for e in events if e["type"] == "open"]})
    editor = Editor(client, events, debounce_ms, records, info.get("engines") or [],
                    options.get("engine", "auto"))
    loop, lags = asyncio.get_running_loop(), []
    started = time.perf_counter()
    try:
        for index, event in enumerate(events):
            delay = editor.started + event["t"] / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(max(0.0, loop.time() - editor.started - event["t"] / 1000))
            editor.handle(index, event)
        unanswered = await editor.finish(drain_timeout)
        try:  # the server's own counters; a server that died has none
            server = await asyncio.wait_for(lsp.status(client), 10)
        except (asyncio.TimeoutError, RuntimeError, JsonRpcException, ConnectionError):
            server = {"state": "gone"}
        lags.sort()
        end = {"kind": "end", "wallMs": round((time.perf_counter() - started) * 1000, 1),
               "requestEvents": editor.request_events, "sent": editor.sent,
               "unanswered": unanswered,
               "lagMs": {"median": round(lags[len(lags) // 2] * 1000, 2),
                         "max": round(lags[-1] * 1000, 2)},
               "serverRequests": server.get("requests"), "serverState": server.get("state")}
        records.write(end)
        return end
    finally:
        records.close()
