"""Stand-ins for `infill.engines.Engines`: no model, one step per requested token (FAKE_STEP_MS
each, 0 by default), and the cancel token checked every step, as the real decoders do."""

from __future__ import annotations

import os
import threading
import time

import torch

from infill.request import Completion


class FakeModel:
    def __init__(self, name: str, device: str = "cpu"):
        self.name, self.device = name, device


def fake_text(request) -> str:
    """Deterministic, and tells which engine and which cursor it was made for."""
    return f"{request.engine[:4]}_{len(request.prefix)}_{len(request.suffix)}()"


class FakeEngines:
    def __init__(self, config, step_s: float = 0.0, load_s: float = 0.0,
                 fail: tuple[str, ...] = (), oom: int = 0):
        self.config = config
        self.step_s, self.load_s, self.fail, self.oom = step_s, load_s, fail, oom
        self.requests = []  # what reached the engine
        self._lock = threading.Lock()

    def _model(self, engine: str, name: str) -> FakeModel:
        with self._lock:
            if self.load_s:
                time.sleep(self.load_s)
                self.load_s = 0.0
        if engine in self.fail:
            raise RuntimeError(f"cannot load {engine} model from /nowhere: it has no config.json")
        return FakeModel(name, self.config.device or "cpu")

    @property
    def ar(self) -> FakeModel:
        return self._model("speculative", "fake-ar")

    @property
    def diffusion(self) -> FakeModel:
        return self._model("diffusion", "fake-diffusion")

    def complete(self, request) -> list[Completion]:
        self.requests.append(request)
        if self.oom > 0 and self.config.device != "cpu":
            self.oom -= 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        started = time.perf_counter()
        for _ in range(request.max_tokens):
            request.cancel.check()
            if self.step_s:
                time.sleep(self.step_s)
        request.cancel.check()
        model = self.ar if request.engine == "speculative" else self.diffusion
        return [Completion(fake_text(request), request.engine, model.name, request.max_tokens,
                           request.max_tokens, (time.perf_counter() - started) * 1000)]

    @classmethod
    def from_env(cls, config) -> FakeEngines:
        env = os.environ.get
        return cls(config, step_s=float(env("FAKE_STEP_MS", "0")) / 1000,
                   load_s=float(env("FAKE_LOAD_MS", "0")) / 1000,
                   fail=tuple(x for x in env("FAKE_FAIL", "").split(",") if x))
