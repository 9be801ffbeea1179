"""The models behind the engines, loaded lazily once, and `complete`, the one code path that
the CLI, the language server, batch infill and the benchmarks share."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from infill import autoregressive, syntax
from infill.diffusion import engine as diffusion_engine
from infill.models.loading import (DEFAULT_MODELS, ARModel, DiffusionModel, load_ar,
                                   load_diffusion)
from infill.request import Completion, InfillRequest
from infill.router import choose_engine, is_multiline
from speculative.cancel import Cancelled
from speculative.drafters import CombinedDrafter, ModelDrafter, NgramDrafter

DRAFTERS = ("auto", "combined", "model", "ngram", "none")


@dataclass
class ModelConfig:
    """Where the models come from. None means the shipped default."""

    target: str | None = None
    draft: str | None = None
    diffusion: str | None = None
    drafter: str = "auto"  # one of DRAFTERS: what proposes tokens for the AR target
    device: str | None = None  # "cpu", "cuda", "cuda:1"; None: a GPU when there is one
    dtype: str | None = None
    fim_format: str | None = None  # override the detected AR prompt format
    diffusion_family: str | None = None  # override the detected diffusion family
    trust_remote_code: bool = False  # LLaDA / Dream ship their own modelling code
    # how the diffusion engine sizes a gap (`diffusion_engine.LENGTHS`): "ar", the AR model's
    # greedy completion's length (the AR model runs first); "pad", an oversized gap that the
    # diffusion model's pads shorten (no AR model needed)
    diffusion_length: str = "ar"

    def __post_init__(self):
        if self.drafter not in DRAFTERS:
            raise ValueError(f"unknown drafter {self.drafter!r}: use one of {', '.join(DRAFTERS)}")
        if self.diffusion_length not in diffusion_engine.LENGTHS:
            raise ValueError(f"unknown diffusion length {self.diffusion_length!r}: use one of "
                             f"{', '.join(diffusion_engine.LENGTHS)}")


class Engines:
    """Loads each model on first use and serves completions; one completion at a time per
    engine, since each owns a KV cache that the next request reuses."""

    def __init__(self, config: ModelConfig | None = None):
        self.config = config or ModelConfig()
        self._load_lock = threading.Lock()
        self._run_locks = {"speculative": threading.Lock(), "diffusion": threading.Lock()}
        self._ar: ARModel | None = None
        self._draft: ARModel | None = None
        self._diffusion: DiffusionModel | None = None
        self._drafter = None
        self._last_greedy = None  # (key, text, DecodeResult) of the last greedy AR completion

    @property
    def ar(self) -> ARModel:
        with self._load_lock:
            if self._ar is None:
                c = self.config
                self._ar = load_ar(c.target, c.device, c.dtype, c.fim_format, c.trust_remote_code)
            return self._ar

    def _draft_path(self):
        """The draft model: the one named, else the shipped one when the target is shipped too
        (a draft must share the target's tokenizer), else none."""
        if self.config.draft:
            return self.config.draft
        return None if self.config.target else DEFAULT_MODELS["draft"]

    @property
    def drafter(self):
        """None, an n-gram drafter, the draft model, or both (the n-gram draft when it finds one).

        "auto": both where a draft model is configured, else n-gram lookup alone. The shipped
        draft is about as costly per step as the shipped target (both are launch-bound on a
        GPU), so it slows the pair down: n-gram lookup alone ran at 1.53x plain AR against
        1.24x with the draft model too on an H200, and at 1.16x against 1.09x on a CPU
        (BENCHMARKS.md, eighth session)."""
        kind = self.config.drafter
        if kind == "auto":
            kind = "combined" if self.config.draft else "ngram"
        if kind == "none":
            return None
        next_tokens = self.ar.next_tokens  # (loads the target first: not under the lock below)
        with self._load_lock:
            if self._drafter is None:
                c, path = self.config, self._draft_path()
                ngram = NgramDrafter(next_tokens=next_tokens)
                if kind == "ngram" or path is None:
                    self._drafter = ngram
                else:
                    self._draft = load_ar(path, c.device, c.dtype, c.fim_format,
                                          c.trust_remote_code)
                    model = ModelDrafter(self._draft.model, p_min=0.3)
                    self._drafter = model if kind == "model" else CombinedDrafter(ngram, model)
            return self._drafter

    @property
    def diffusion(self) -> DiffusionModel:
        with self._load_lock:
            if self._diffusion is None:
                c = self.config
                self._diffusion = load_diffusion(c.diffusion, c.device, c.dtype,
                                                 c.diffusion_family, c.trust_remote_code)
            return self._diffusion

    def complete(self, request: InfillRequest) -> list[Completion]:
        """The request's completions, syntax-guarded: one, or up to `request.candidates`
        different ones when sampling (greedy decoding has one answer), valid ones first."""
        engine = choose_engine(request)
        multiline = is_multiline(request)
        count = request.candidates if request.temperature > 0 else 1
        generate = self._diffusion_candidates if engine == "diffusion" else self._ar_candidates
        with self._run_locks[engine]:
            start = time.perf_counter()
            model_name, texts, tokens, forwards = generate(request, multiline, count)
            checked = [syntax.guard(request.prefix, request.suffix, text, request.language,
                                    request.path, multiline=multiline) for text in texts]
            ms = (time.perf_counter() - start) * 1000
        completions, seen = [], set()
        for c, n, f in sorted(zip(checked, tokens, forwards), key=lambda x: not x[0].valid):
            if c.text not in seen:
                seen.add(c.text)
                completions.append(Completion(c.text, engine, model_name, n, f, ms,
                                              valid=c.valid, truncated=c.truncated))
        return completions

    def _diffusion_candidates(self, request, multiline, count):
        """(model name, texts, tokens, forwards): the candidates denoised as one batch, in a gap
        sized as `diffusion_length` says."""
        length = self.config.diffusion_length
        gap = self._ar_gap(request, multiline) if length == "ar" else None
        texts, tokens, forwards = diffusion_engine.generate_candidates(
            self.diffusion, request, multiline,
            diffusion_engine.default_settings(length, multiline), gap, rows=count)
        return self.diffusion.name, texts, tokens, [forwards] * count

    def _ar_gap(self, request, multiline) -> int:
        """The diffusion gap from the AR engine's greedy completion (`diffusion_engine.ar_gap`),
        under that engine's lock (its decoder's cache is shared)."""
        with self._run_locks["speculative"]:
            text, _ = self._greedy_ar(request, multiline)
        return diffusion_engine.gap_for_text(self.diffusion, text, request, multiline)

    def _greedy_ar(self, request, multiline):
        """(text, DecodeResult) of the AR model's greedy completion of the request, with the AR
        engine's lock held. The last one is kept: an Invoked request asks both engines, and
        the diffusion engine sizes its gap from the same completion."""
        if request.cancel.cancelled:
            raise Cancelled()
        key = (request.prefix, request.suffix, multiline, request.max_tokens)
        if self._last_greedy is None or self._last_greedy[0] != key:
            text, result = autoregressive.generate(
                self.ar, replace(request, temperature=0.0), multiline, self.drafter)
            self._last_greedy = (key, text, result)
        return self._last_greedy[1:]

    def _ar_candidates(self, request, multiline, count):
        """(model name, texts, tokens, forwards): one decode per candidate, seeds S, S+1, ..."""
        texts, tokens, forwards = [], [], []
        for i in range(count):
            if request.temperature <= 0:  # one answer, perhaps already found for the diffusion gap
                text, result = self._greedy_ar(request, multiline)
            else:
                text, result = autoregressive.generate(
                    self.ar, replace(request, seed=(request.seed or 0) + i), multiline,
                    self.drafter)
            texts.append(text)
            tokens.append(len(result.tokens))
            forwards.append(result.forwards)
        return self.ar.name, texts, tokens, forwards
