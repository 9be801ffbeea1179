"""The language server: each LSP feature is one small function below.

A keystroke travels: `didChange` (the document is patched, the document's running completion
is cancelled) -> `textDocument/inlineCompletion` (a window of text around the cursor; the
type-through cache; else the scheduler runs the engines on the model thread, newest request per
document winning) -> `InlineCompletionItem`s with a command that reports acceptance.
Routing, syntax checks and truncation are `infill`'s: this file only speaks the protocol.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from infill.request import InfillRequest
from lsp_server import __version__
from lsp_server.documents import Cursor, Document, Documents
from lsp_server.events import EventLog
from lsp_server.models import ModelHost
from lsp_server.options import ServerOptions, parse_options
from lsp_server.protocol import InfillProtocol
from lsp_server.scheduler import ModelThread, Scheduler
from lsp_server.typethrough import TypeThroughCache

log = logging.getLogger(__name__)

STATUS = "infill/status"  # request: models, device, readiness, recent latencies
EVENT = "infill/event"  # notification: {"type": "shown" | ..., "id": ..., "acceptedLength": n}
ACCEPTED = "infill.accepted"  # command on every item, run by the editor on acceptance


@dataclass(frozen=True)
class Suggestion:
    text: str
    engine: str
    model: str
    ms: float


class Stats:
    """Counters and recent latencies for `infill/status`."""

    def __init__(self, keep: int = 200):
        self.counts = {"requests": 0, "completed": 0, "fromCache": 0, "empty": 0, "stale": 0,
                       "cancelledByClient": 0, "errors": 0}
        self.total_ms: deque[float] = deque(maxlen=keep)  # request in -> answer out
        self.model_ms: deque[float] = deque(maxlen=keep)

    def to_json(self, scheduler: Scheduler, cache: TypeThroughCache) -> dict:
        return {**self.counts, "superseded": scheduler.superseded, "timedOut": scheduler.timed_out,
                "cacheHits": cache.hits, "latencyMs": _summary(self.total_ms),
                "modelMs": _summary(self.model_ms)}


def _summary(values: deque[float]) -> dict:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]  # nearest rank
    return {"count": len(ordered), "median": round(statistics.median(ordered), 2),
            "p90": round(p90, 2), "last": round(values[-1], 2)}


class InfillServer(LanguageServer):
    def __init__(self, defaults: ServerOptions | None = None,
                 make_engines: Callable[[Any], Any] | None = None, **pygls_options):
        super().__init__("infill", __version__, protocol_cls=InfillProtocol,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
                         **pygls_options)
        self.defaults = defaults or ServerOptions()  # the documented ones, or the command line's
        self.options = self.initial = self.defaults
        self.documents = Documents()
        self.worker = ModelThread()
        self.models = ModelHost(self.worker, make_engines, self.tell_from_thread)
        self.scheduler = Scheduler(self.worker)
        self.typethrough = TypeThroughCache()
        self.events = EventLog(self.options.log_dir, self.options.log_events)
        self.stats = Stats()
        self.pending_warnings: list[str] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    # --- telling the user -----------------------------------------------------------------

    def tell(self, level: str, message: str) -> None:
        """Warnings and errors pop up (window/showMessage); the rest goes to the log."""
        getattr(log, level)(message)
        kind = {"error": types.MessageType.Error, "warning": types.MessageType.Warning}.get(level)
        if kind is not None:
            self.window_show_message(types.ShowMessageParams(type=kind, message=message))
        else:
            self.window_log_message(types.LogMessageParams(type=types.MessageType.Info, message=message))

    def tell_from_thread(self, level: str, message: str) -> None:
        if self.loop is None or self.loop.is_closed():
            getattr(log, level)(message)
        else:
            self.loop.call_soon_threadsafe(self.tell, level, message)

    def report_server_error(self, error: Exception, source) -> None:
        """Protocol noise (a malformed message) goes to the client's log, not a pop-up."""
        log.error("%s: %s", getattr(source, "__name__", source), error)
        self.window_log_message(types.LogMessageParams(type=types.MessageType.Error,
                                                       message=f"infill: {error}"))

    # --- options --------------------------------------------------------------------------

    def apply_options(self, raw: Any, initial: bool = False) -> list[str]:
        """Take new options; reload the models in the background when the model options
        changed after they were loaded. `initializationOptions` (initial) are read over the
        command line's defaults; later settings over those, key by key: an absent or invalid
        key keeps the value it had at initialization (a warning says so)."""
        options, warnings = parse_options(raw, self.defaults if initial else self.initial)
        if initial:
            self.initial = options
        old, self.options = self.options, options
        if (options.log_dir, options.log_events) != (old.log_dir, old.log_events):
            self.events = EventLog(options.log_dir, options.log_events)
        reload = options.models_differ(old) or options.engine != old.engine
        if reload and self.models.state != "not loaded":
            self.scheduler.cancel_all()
            self.models.load(options)
        return warnings

    # --- completions ----------------------------------------------------------------------

    async def suggest(self, doc: Document, cursor: Cursor, invoked: bool) -> list[Suggestion]:
        """The suggestions at cursor: the rest of a shown one the user is typing through,
        else the engines' (an empty list when a newer keystroke made this one stale)."""
        started = time.perf_counter()
        self.stats.counts["requests"] += 1
        if not invoked and (rests := self.typethrough.lookup(doc.uri, cursor.prefix, cursor.suffix)):
            self.stats.counts["fromCache"] += 1
            self.stats.total_ms.append((time.perf_counter() - started) * 1000)
            return [Suggestion(text, "cache", "", 0.0) for text in rests]
        try:
            completions = await self.scheduler.run(
                doc.uri, partial(self.models.complete, self.request_for(doc, cursor), invoked),
                debounce=0.0 if invoked else self.options.debounce_for(self.models.device),
                deadline=time.monotonic() + self.options.timeout_ms / 1000)
        except asyncio.CancelledError:
            self.stats.counts["cancelledByClient"] += 1
            raise
        except Exception as exc:  # a bug in an engine must cost one completion, not the server
            self.stats.counts["errors"] += 1
            log.exception("completion failed")
            self.window_log_message(types.LogMessageParams(
                type=types.MessageType.Error, message=f"infill: completion failed: {exc!r}"))
            return []
        if completions is None:
            return []
        # valid=False: the syntax guard could not check the text; never show that
        suggestions = _unique([Suggestion(c.text, c.engine, c.model, c.ms)
                               for c in completions if c.valid])
        self.typethrough.store(doc.uri, cursor.prefix, cursor.suffix, [s.text for s in suggestions])
        if self.documents.get(doc.uri) is not doc or doc.revision != cursor.revision:
            self.stats.counts["stale"] += 1
            return []
        self.stats.counts["completed" if suggestions else "empty"] += 1
        self.stats.total_ms.append((time.perf_counter() - started) * 1000)
        self.stats.model_ms.append(sum(c.ms for c in completions))
        return suggestions

    def request_for(self, doc: Document, cursor: Cursor) -> InfillRequest:
        o = self.options
        return InfillRequest(prefix=cursor.prefix, suffix=cursor.suffix, language=doc.language_id,
                             path=doc.path, engine=o.engine, max_tokens=o.max_tokens,
                             multiline=o.multiline_flag)

    def item(self, doc: Document, cursor: Cursor, suggestion: Suggestion) -> types.InlineCompletionItem:
        item_id = self.events.issue(uri=doc.uri, language=doc.language_id, engine=suggestion.engine,
                                    model=suggestion.model, chars=len(suggestion.text),
                                    ms=round(suggestion.ms, 1))
        at = types.Position(line=cursor.line, character=cursor.character)
        return types.InlineCompletionItem(
            insert_text=suggestion.text, range=types.Range(start=at, end=at),
            command=types.Command(title="infill: accepted", command=ACCEPTED, arguments=[item_id]))

    def status(self) -> dict:
        return {"version": __version__, "ready": self.models.ready, **self.models.status(),
                "options": self.options.to_json(), "documents": len(self.documents),
                "queued": self.worker.pending, "inFlight": self.scheduler.running,
                "requests": self.stats.to_json(self.scheduler, self.typethrough),
                "events": dict(self.events.counts), "eventLog": str(self.events.path)
                if self.events.enabled else None}


def _unique(suggestions: list[Suggestion]) -> list[Suggestion]:
    seen, out = set(), []
    for s in suggestions:
        if s.text and s.text not in seen:
            seen.add(s.text)
            out.append(s)
    return out


# --- the features: registered on each server that create_server makes -----------------------

FEATURES: list[tuple[str, Any, Callable]] = []


def feature(method: str, options: Any = None):
    def register(fn):
        FEATURES.append((method, options, fn))
        return fn
    return register


@feature(types.INITIALIZE)
def initialize(ls: InfillServer, params: types.InitializeParams) -> None:
    """Read the options; nothing slow happens here, so `initialize` answers at once."""
    ls.loop = asyncio.get_running_loop()
    encoding = ls.workspace.position_encoding or "utf-16"  # what pygls agreed with the client
    ls.documents.encoding = getattr(encoding, "value", encoding)
    ls.pending_warnings += ls.apply_options(params.initialization_options, initial=True)


@feature(types.INITIALIZED)
def initialized(ls: InfillServer, params: types.InitializedParams) -> None:
    """Start loading the models in the background; until they are ready, completions are empty."""
    for warning in ls.pending_warnings:
        ls.tell("warning", warning)
    ls.pending_warnings = []
    ls.models.load(ls.options)


@feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
def did_change_configuration(ls: InfillServer, params: types.DidChangeConfigurationParams) -> None:
    """Settings pushed by the client take effect before the next message is read; a client
    that pushes none is asked for its `infill` section."""
    if isinstance(params.settings, dict) or not _client_has_configuration(ls):
        _take_settings(ls, params.settings)
    else:
        asyncio.ensure_future(_pull_settings(ls))


async def _pull_settings(ls: InfillServer) -> None:
    [settings] = await ls.workspace_configuration_async(types.ConfigurationParams(
        items=[types.ConfigurationItem(section="infill")]))
    _take_settings(ls, settings)


def _take_settings(ls: InfillServer, settings: Any) -> None:
    for warning in ls.apply_options(settings):
        ls.tell("warning", warning)


def _client_has_configuration(ls: InfillServer) -> bool:
    workspace = ls.client_capabilities.workspace
    return bool(workspace and workspace.configuration)


@feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: InfillServer, params: types.DidOpenTextDocumentParams) -> None:
    doc = params.text_document
    ls.scheduler.supersede(doc.uri)
    ls.typethrough.forget(doc.uri)
    ls.documents.open(doc.uri, doc.text, doc.language_id, doc.version)


@feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: InfillServer, params: types.DidChangeTextDocumentParams) -> None:
    """Patch the document and cancel its running completion: it is for text that is gone."""
    uri = params.text_document.uri
    ls.scheduler.supersede(uri)
    if (doc := ls.documents.get(uri)) is None:
        log.warning("didChange for %s, which is not open: ignored", uri)
        return
    for change in params.content_changes:
        if isinstance(change, types.TextDocumentContentChangePartial):
            r = change.range
            doc.apply_change(change.text, (r.start.line, r.start.character), (r.end.line, r.end.character))
        else:
            doc.apply_change(change.text)
    doc.version = params.text_document.version


@feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: InfillServer, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.scheduler.supersede(uri)
    ls.typethrough.forget(uri)
    ls.documents.close(uri)


@feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def inline_completion(ls: InfillServer, params: types.InlineCompletionParams) -> types.InlineCompletionList:
    """Ghost text at the cursor. An unknown document, or models still loading, get an empty
    list rather than an error: the editor simply asks again on the next keystroke."""
    doc = ls.documents.get(params.text_document.uri)
    if doc is None or not ls.models.ready:
        return types.InlineCompletionList(items=[])
    cursor = doc.cursor(params.position.line, params.position.character, ls.options.context_chars)
    invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
    suggestions = await ls.suggest(doc, cursor, invoked)
    return types.InlineCompletionList(items=[ls.item(doc, cursor, s) for s in suggestions])


@feature(STATUS)
def status(ls: InfillServer, params: Any) -> dict:
    """Models, device, readiness, options and recent latencies, for editors and benchmarks."""
    return ls.status()


@feature(EVENT)
def event(ls: InfillServer, params: Any) -> None:
    """A shown / accepted / partially accepted / dismissed suggestion, logged locally."""
    if hasattr(params, "_asdict"):  # pygls hands untyped params over as a namedtuple
        params = params._asdict()
    if not isinstance(params, dict):
        return
    length = params.get("acceptedLength")
    length = length if isinstance(length, int) and not isinstance(length, bool) else None
    if not ls.events.record(str(params.get("type")), params.get("id"), length):
        log.info("ignored event %r", params)


def accepted(ls: InfillServer, *args: Any) -> None:
    """The command on every item: the editor runs it when the user accepts the suggestion."""
    ls.events.record("accepted", args[0] if args else None)


@feature(types.SHUTDOWN)
def shutdown(ls: InfillServer, params: Any) -> None:
    ls.scheduler.cancel_all()


def create_server(defaults: ServerOptions | None = None,
                  make_engines: Callable[[Any], Any] | None = None, **pygls_options) -> InfillServer:
    """A server with every feature registered. `make_engines(ModelConfig)` replaces
    `infill.engines.Engines` (benchmarks and tests use instant stand-ins); pygls_options go
    to pygls' LanguageServer (e.g. a shared converter_factory)."""
    server = InfillServer(defaults, make_engines, **pygls_options)
    for method, options, fn in FEATURES:
        server.feature(method, options)(fn)
    server.command(ACCEPTED)(accepted)
    return server


def serve(tcp: str | None = None, defaults: ServerOptions | None = None,
          make_engines: Callable[[Any], Any] | None = None, log_file: str | None = None,
          verbose: bool = False) -> int:
    """Serve on stdio, or on `HOST:PORT` with tcp."""
    logging.basicConfig(filename=log_file, level=logging.DEBUG if verbose else
                        logging.INFO if log_file else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not verbose:  # pygls logs every message's body at INFO: multi-megabyte documents
        logging.getLogger("pygls").setLevel(logging.WARNING)
    server = create_server(defaults, make_engines)
    if tcp:
        host, _, port = tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
        return 0
    # The protocol owns stdout: anything else printed (by a library, say) goes to stderr.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    server.start_io(sys.stdin.buffer, protocol_out)
    return 0
