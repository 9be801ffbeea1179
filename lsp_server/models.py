"""The engines behind the server: loaded in the background, warmed up, and kept serving.

`initialize` must answer at once, and a model folder that fails to load must not take the
server down, so loading runs on the model thread after `initialized`; until it is done every
request gets an empty list. When one engine fails to load, the other serves alone; when both
fail, the server stays up, answers empty lists and says why (`window/showMessage` and
`infill/status`).

A GPU out-of-memory error is retried on half the window of text, and then on the CPU (the
models are reloaded there); both fallbacks stay in force and are reported.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from infill.context import clip_text
from infill.request import InfillRequest
from infill.router import choose_engine
from lsp_server.options import ServerOptions
from lsp_server.scheduler import ModelThread

log = logging.getLogger(__name__)

ROLES = {"speculative": "ar", "diffusion": "diffusion"}  # engine -> Engines attribute
WARMUP = ("def add(a, b):\n    return ", "\n")
MIN_WINDOW = 512  # characters: below this a completion has too little to go on


def is_out_of_memory(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


class ModelHost:
    """Owns one `infill.engines.Engines` (or a stand-in with the same `.ar`, `.diffusion`,
    `.config` and `complete`); every method but `load` and `status` runs on the model thread."""

    def __init__(self, worker: ModelThread, make_engines: Callable[[Any], Any] | None = None,
                 report: Callable[[str, str], None] | None = None):
        self.worker = worker
        self.make_engines = make_engines
        self.report = report or (lambda level, message: None)  # called on the model thread
        self.state = "not loaded"  # -> "loading" -> "ready" | "failed"
        self.error: str | None = None
        self.engines: Any = None
        self.available: tuple[str, ...] = ()
        self.models: dict[str, str] = {}
        self.device: str | None = None
        self.load_seconds: float | None = None
        self.window_cap: int | None = None  # characters, after a GPU out-of-memory
        self.notes: list[str] = []
        self._generation = 0

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def load(self, options: ServerOptions):
        """Start (re)loading in the background; returns the model thread's future."""
        self._generation += 1
        self.state, self.error = "loading", None
        return self.worker.submit(self._load, self._generation, options)

    def _load(self, generation: int, options: ServerOptions) -> None:
        started = time.perf_counter()
        wanted = list(ROLES) if options.engine == "auto" else [options.engine]
        errors: list[str] = []
        try:
            engines = self._make(options.model_config())
        except Exception as exc:
            engines, wanted, errors = None, [], [one_line(exc)]
        models = {}
        for engine in wanted:
            try:
                models[engine] = getattr(engines, ROLES[engine])
            except Exception as exc:  # ModelError, or anything a broken checkpoint throws
                errors.append(one_line(exc))
        if generation != self._generation:
            return  # a newer configuration is loading
        self.engines, self.available = engines, tuple(models)
        self.window_cap, self.notes = None, []
        for engine in list(models) if options.warmup else []:
            try:
                self._warm_up(engine)
            except Exception as exc:
                errors.append(f"{engine} warm-up failed: {one_line(exc)}")
                del models[engine]
        if not models:
            self.state, self.error, self.engines, self.available = "failed", "; ".join(errors), None, ()
            self.models, self.device = {}, None
            self.report("error", f"infill: no model could be loaded, completions are off: {self.error}")
            return
        self.available = tuple(models)
        self.models = {engine: model.name for engine, model in models.items()}
        if self.device != "cpu" or not self.notes:  # unless a warm-up fell back to the CPU
            self.device = str(next(iter(models.values())).device)
        self.load_seconds = time.perf_counter() - started
        self.state, self.error = "ready", "; ".join(errors) or None
        if errors:
            self.report("warning", f"infill: serving with {', '.join(models)} only: {self.error}")
        self.report("info", f"infill: models ready on {self.device} in {self.load_seconds:.1f} s")

    def _make(self, config):
        if self.make_engines is not None:
            return self.make_engines(config)
        from infill.engines import Engines  # torch and transformers: loaded on the model thread

        return Engines(config)

    def _warm_up(self, engine: str) -> None:
        """One tiny completion: the first forward pays for allocations (and, on a GPU,
        kernel selection), so the user's first keystroke does not. It takes the
        out-of-memory fallbacks like any request."""
        self._complete_one(InfillRequest(prefix=WARMUP[0], suffix=WARMUP[1], engine=engine,
                                         max_tokens=4, multiline=False, language="python"))

    # --- serving, on the model thread -------------------------------------------------------

    def complete(self, request: InfillRequest, invoked: bool, token) -> list:
        """Completions for request (an InfillRequest); an Invoked trigger asks every loaded
        engine, routed one first. Raises Cancelled when token fires."""
        token.check()
        engines = self.engines
        if engines is None:
            return []
        results = []
        for engine in self._engines_for(request, invoked):
            results += self._complete_one(replace(request, engine=engine, cancel=token))
        return results

    def _engines_for(self, request: InfillRequest, invoked: bool) -> list[str]:
        if request.engine != "auto":
            return [request.engine] if request.engine in self.available else []
        routed = choose_engine(request)
        if routed not in self.available:
            routed = self.available[0]
        others = [e for e in self.available if e != routed]
        return [routed] + others if invoked else [routed]

    def _complete_one(self, request: InfillRequest) -> list:
        """Complete; on GPU out-of-memory retry with half the window, then on the CPU."""
        for fallback in (self._halve_window, lambda _: self._move_to_cpu(), None):
            capped = self._capped(request)
            try:
                return self.engines.complete(capped)
            except Exception as exc:
                if fallback is None or not is_out_of_memory(exc):
                    raise
            fallback(capped)

    def _halve_window(self, request: InfillRequest) -> None:
        _free_gpu_memory()
        self.window_cap = max(MIN_WINDOW, (len(request.prefix) + len(request.suffix)) // 2)
        self._note(f"GPU out of memory: the window is now {self.window_cap} characters")

    def _capped(self, request: InfillRequest) -> InfillRequest:
        if self.window_cap is None or len(request.prefix) + len(request.suffix) <= self.window_cap:
            return request
        prefix, suffix = clip_text(request.prefix, request.suffix, self.window_cap)
        return replace(request, prefix=prefix, suffix=suffix)

    def _move_to_cpu(self) -> None:
        old = self.engines
        self.engines = self._make(replace(old.config, device="cpu"))
        for engine in self.available:
            getattr(self.engines, ROLES[engine])
        del old
        _free_gpu_memory()
        self.device = "cpu"
        self._note("GPU out of memory again: the models moved to the CPU")

    def _note(self, message: str) -> None:
        self.notes.append(message)
        self.report("warning", f"infill: {message}")

    def status(self) -> dict:
        return {"state": self.state, "error": self.error, "device": self.device,
                "models": self.models, "engines": list(self.available),
                "loadSeconds": None if self.load_seconds is None else round(self.load_seconds, 2),
                "windowCap": self.window_cap, "fallbacks": list(self.notes)}


def _free_gpu_memory() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
