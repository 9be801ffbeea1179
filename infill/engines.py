"""The models behind the engines, loaded lazily once, and `complete`, the one code path that
the CLI, the language server, batch infill and the benchmarks share."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from infill import autoregressive, syntax
from infill.diffusion import engine as diffusion_engine
from infill.models.loading import ARModel, DiffusionModel, load_ar, load_diffusion
from infill.request import Completion, InfillRequest
from infill.router import choose_engine


@dataclass
class ModelConfig:
    """Where the models come from. None means the shipped default."""

    target: str | None = None
    draft: str | None = None
    diffusion: str | None = None
    device: str | None = None  # "cpu", "cuda", "cuda:1"; None: a GPU when there is one
    dtype: str | None = None
    fim_format: str | None = None  # override the detected AR prompt format
    diffusion_family: str | None = None  # override the detected diffusion family
    trust_remote_code: bool = False  # LLaDA / Dream ship their own modelling code


class Engines:
    """Loads each model on first use (thread-safe) and serves completions."""

    def __init__(self, config: ModelConfig | None = None):
        self.config = config or ModelConfig()
        self._lock = threading.Lock()
        self._ar: ARModel | None = None
        self._diffusion: DiffusionModel | None = None

    @property
    def ar(self) -> ARModel:
        with self._lock:
            if self._ar is None:
                c = self.config
                self._ar = load_ar(c.target, c.device, c.dtype, c.fim_format, c.trust_remote_code)
            return self._ar

    @property
    def diffusion(self) -> DiffusionModel:
        with self._lock:
            if self._diffusion is None:
                c = self.config
                self._diffusion = load_diffusion(c.diffusion, c.device, c.dtype,
                                                 c.diffusion_family, c.trust_remote_code)
            return self._diffusion

    def complete(self, request: InfillRequest) -> list[Completion]:
        engine = choose_engine(request)
        multiline = request.multiline
        if multiline is None:
            multiline = syntax.is_multiline_position(request.prefix, request.suffix,
                                                     request.language, request.path)
        start = time.perf_counter()
        if engine == "diffusion":
            model_name = self.diffusion.name
            text, tokens, forwards = diffusion_engine.generate(self.diffusion, request, multiline)
        else:
            model_name = self.ar.name
            text, tokens, forwards = autoregressive.generate(self.ar, request, multiline)
        checked = syntax.guard(request.prefix, request.suffix, text, request.language,
                               request.path, multiline=multiline)
        ms = (time.perf_counter() - start) * 1000
        return [Completion(checked.text, engine, model_name, tokens, forwards, ms,
                           valid=checked.valid, truncated=checked.truncated)]
