"""Many requests at once: `Engines.complete`'s code path with the generation step batched.

Each request is routed, shaped (single/multi-line), prompted, cut and guarded exactly as
`Engines.complete` does it (the same functions); only the model calls are shared:

- AR: prompts of similar length go together. Decoding is plain (no draft: batching, not
  speculation, is what buys throughput here); a row stops contributing as soon as it stops.
  Where the single path runs on the static KV cache (Llama/Qwen2), the rows do too
  (`speculative.static.StaticBatch`: the same forward, a cache slot per row at the row's own
  positions, a CUDA graph per row bucket on a GPU); otherwise they are left-padded through HF's
  forward with an attention mask and each row's own positions. Either way a row computes what
  it would alone, up to the rounding of other kernel shapes: greedy output equals the
  single-request path's but for near-ties (speculative greedy decoding equals the target
  alone); sampled rows draw from their own generator seeded with the request's seed, as the
  single path without a drafter.
- diffusion: each gap is sized as the single path sizes it (by default from the AR model's
  greedy completion, the AR rows batched as above, a chunk of rows at a time); canvases of
  the same shape (a line, a few lines) go together; prefixes are left-padded, gaps padded to
  the batch's widest and suffixes right-padded so every gap starts at the same column and has
  one width, which lets the one sampler
  (`infill.diffusion.sampler.denoise`) run unchanged on the [B, L] batch, the model seeing an
  attention mask and each row's own positions. Greedy output equals the single path; sampled
  rows share one generator per batch (seeded with the first row's seed), so a sample depends on
  its batch's make-up, not only on its seed.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from infill import autoregressive, syntax
from infill.context import cut_completion
from infill.diffusion import engine as diffusion_engine
from infill.diffusion.sampler import denoise
from infill.request import Completion, InfillRequest
from infill.router import choose_engine, is_multiline
from speculative.sampling import draw, probabilities
from speculative.static import batch_cache

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 32
DEFAULT_BATCH_TOKENS = 32768  # padded prompt + new tokens (AR) or canvas tokens (diffusion)
SIZING_CHUNK = 256  # diffusion rows whose gaps the AR model sizes before they are denoised


@dataclass
class Job:
    index: int  # position in the caller's list
    request: InfillRequest
    engine: str
    multiline: bool
    prompt: list[int] | None = None  # AR: the FIM prompt ids
    canvas: list[int] | None = None  # diffusion: prefix + gap masks + suffix ids
    start: int = 0  # diffusion: where the gap starts in the canvas
    gap: int = 0  # diffusion: masks in the gap
    length_ms: float = 0.0  # diffusion: this row's share of the AR decoding that sized its gap
    error: Exception | None = None  # diffusion: sizing its gap failed (reported as its result)


def plan(index: int, request: InfillRequest) -> Job:
    return Job(index, request, choose_engine(request), is_multiline(request))


def buckets(jobs: list, size: Callable[[object], int], max_rows: int,
            max_tokens: int) -> Iterator[list]:
    """Consecutive runs of the jobs sorted by size, each at most max_rows long and at most
    max_tokens in padded size (rows x the largest size), a job too large for that alone."""
    batch: list = []
    for job in sorted(jobs, key=size):
        if batch and (len(batch) >= max_rows or (len(batch) + 1) * size(job) > max_tokens):
            yield batch
            batch = []
        batch.append(job)
    if batch:
        yield batch


class BatchedEngines:
    """Completes a list of requests in batches with the models of an `Engines`."""

    def __init__(self, engines, batch_size: int = DEFAULT_BATCH_SIZE,
                 max_batch_tokens: int = DEFAULT_BATCH_TOKENS, guard: bool = True):
        self.engines = engines
        self.guard = guard
        self.batch_size = max(1, batch_size)
        self.max_batch_tokens = max(1, max_batch_tokens)
        self.length = engines.config.diffusion_length  # how a diffusion gap is sized

    def _settings(self, multiline: bool):
        return diffusion_engine.default_settings(self.length, multiline)

    def complete_many(self, requests: list[InfillRequest]
                      ) -> Iterator[list[tuple[int, Completion | Exception]]]:
        """Yields each batch's results as it finishes: (index in `requests`, completion, or the
        exception that row raised on its own after its batch failed)."""
        jobs = [plan(i, r) for i, r in enumerate(requests)]
        for engine in ("speculative", "diffusion"):
            mine = [j for j in jobs if j.engine == engine]
            if not mine:
                continue
            run = self._ar_batch if engine == "speculative" else self._diffusion_batch
            for batch in self._batches(engine, mine):
                yield self._guarded(run, batch)

    def _batches(self, engine: str, jobs: list[Job]) -> Iterator[list[Job]]:
        if engine == "speculative":
            yield from self._ar_batches(jobs)
            return
        # sized a chunk at a time: a long job writes its first rows without waiting for the
        # AR model to size every gap
        for chunk in range(0, len(jobs), SIZING_CHUNK):
            yield from self._diffusion_batches(jobs[chunk:chunk + SIZING_CHUNK])

    def _diffusion_batches(self, jobs: list[Job]) -> Iterator[list[Job]]:
        dm = self.engines.diffusion
        padding = accepts_padding(dm.model)
        if self.length == "ar":
            self._ar_gaps(jobs)
        else:
            for j in jobs:
                j.gap = diffusion_engine.gap_size(j.request, j.multiline,
                                                  self._settings(j.multiline))
        groups = defaultdict(list)
        for j in jobs:
            j.canvas, j.start = diffusion_engine.build_canvas(dm, j.request.prefix,
                                                              j.request.suffix, j.gap)
            # one sampler call per batch: one schedule, one temperature (gaps of different
            # sizes are padded to one, `_diffusion_batch`); without padding support in the
            # model, only canvases of identical layout can share a batch
            key = (j.multiline, j.request.temperature)
            if j.error is not None:  # alone, to be reported as its result
                key = ("error", j.index)
            if not padding:
                key += (j.gap, j.start, len(j.canvas))
            groups[key].append(j)
        for key in sorted(groups, key=str):
            # padded width can exceed the longest canvas (one row's long prefix, another's long
            # suffix): the token bound holds approximately, up to a factor of two
            yield from buckets(groups[key], lambda j: len(j.canvas), self.batch_size,
                               self.max_batch_tokens)

    def _ar_batches(self, jobs: list[Job]) -> Iterator[list[Job]]:
        """The jobs' FIM prompts, in batches of similar length."""
        ar = self.engines.ar
        for j in jobs:
            j.prompt = autoregressive.build_prompt(ar, j.request.prefix, j.request.suffix,
                                                   j.request.max_tokens)
        yield from buckets(jobs, lambda j: len(j.prompt) + j.request.max_tokens,
                           self.batch_size, self.max_batch_tokens)

    def _ar_gaps(self, jobs: list[Job]) -> None:
        """Each diffusion job's gap from the AR model's greedy completion of its request, the
        AR rows batched (`diffusion_engine.ar_gap` is the single path's); a row whose gap could
        not be sized keeps the error, to be reported as its result."""
        for batch in self._ar_batches(jobs):
            outcomes = dict(self._guarded(self._size_gaps, batch))  # None, or the error
            for job in batch:
                job.error = outcomes[job.index]

    def _size_gaps(self, batch: list[Job]) -> list[tuple[int, None]]:
        texts, ms = self._ar_texts(batch, greedy=True)
        for j, (text, _, _) in zip(batch, texts):
            j.gap = diffusion_engine.gap_for_text(self.engines.diffusion, text, j.request,
                                                  j.multiline)
            j.length_ms = ms
        return [(j.index, None) for j in batch]

    def _ar_texts(self, batch: list[Job], greedy: bool = False
                  ) -> tuple[list[tuple[str, list[int], int]], float]:
        """([(completion text, tokens, forwards)] per row, ms per row): the rows decoded
        together, each with its request's sampling settings or greedily."""
        ar = self.engines.ar
        start = time.perf_counter()
        rows = len(batch)
        results = decode_batch(
            ar.model, [j.prompt for j in batch],
            max_new_tokens=[j.request.max_tokens for j in batch], stop_ids=ar.stop_ids,
            stop_rules=[autoregressive.stop_rule(ar, j.request.suffix, j.multiline)
                        for j in batch],
            temperatures=[0.0] * rows if greedy else [j.request.temperature for j in batch],
            top_ps=[1.0] * rows if greedy else [j.request.top_p for j in batch],
            seeds=[None] * rows if greedy else [j.request.seed for j in batch],
            pad_id=_pad_id(ar.tokenizer))
        ms = (time.perf_counter() - start) * 1000 / rows
        texts = [(autoregressive.completion_text(ar, tokens, j.request.suffix, j.multiline),
                  tokens, forwards) for j, (tokens, forwards) in zip(batch, results)]
        return texts, ms

    def _guarded(self, run, batch: list[Job]) -> list[tuple[int, Completion | Exception]]:
        """Run a batch; if it fails, each row alone, so one bad row costs only itself."""
        try:
            return run(batch)
        except Exception as exc:  # noqa: BLE001 -- reported per row by the caller
            if len(batch) == 1:
                return [(batch[0].index, exc)]
            results = []
            for job in batch:
                results += self._guarded(run, [job])
            return results

    def _finish(self, job: Job, text: str, model: str, tokens: int, forwards: int,
                ms: float) -> tuple[int, Completion]:
        r = job.request
        if not self.guard:  # the baseline: raw text, judged but not changed
            language = syntax.language_for(r.language, r.path)
            valid = syntax.check(r.prefix, text, r.suffix, language).valid
            return job.index, Completion(text, job.engine, model, tokens, forwards, ms,
                                         valid=valid)
        checked = syntax.guard(r.prefix, r.suffix, text, r.language, r.path,
                               multiline=job.multiline)
        return job.index, Completion(checked.text, job.engine, model, tokens, forwards, ms,
                                     valid=checked.valid, truncated=checked.truncated)

    def _ar_batch(self, batch: list[Job]) -> list[tuple[int, Completion]]:
        texts, ms = self._ar_texts(batch)
        name = self.engines.ar.name
        return [self._finish(job, text, name, len(tokens), forwards, ms)
                for job, (text, tokens, forwards) in zip(batch, texts)]

    def _diffusion_batch(self, batch: list[Job]) -> list[tuple[int, Completion]]:
        """Rows of different gap sizes share a batch: each gap is padded to the widest, the
        padding between a row's gap and its suffix hidden by the attention mask and skipped by
        the positions, so each row's model sees its own prefix + gap + suffix."""
        if batch[0].error is not None:
            raise batch[0].error
        dm, settings = self.engines.diffusion, self._settings(batch[0].multiline)
        start_time = time.perf_counter()
        out = [self._finish(j, "", dm.name, 0, 0, j.length_ms)  # an AR length of no tokens
               for j in batch if j.gap == 0]
        batch = [j for j in batch if j.gap > 0]
        if not batch:
            return out
        first = batch[0].request
        gap = max(j.gap for j in batch)
        left = max(j.start for j in batch)
        right = max(len(j.canvas) - j.start - j.gap for j in batch)
        pad = _pad_id(dm.tokenizer)
        rows, mask = [], []
        for j in batch:
            end = j.start + j.gap
            before, inside, after = left - j.start, gap - j.gap, right - (len(j.canvas) - end)
            rows.append([pad] * before + j.canvas[:end] + [pad] * inside + j.canvas[end:]
                        + [pad] * after)
            mask.append([0] * before + [1] * end + [0] * inside + [1] * (len(j.canvas) - end)
                        + [0] * after)
        canvas = torch.tensor(rows, device=dm.device)
        attention = torch.tensor(mask, device=dm.device)
        model = PaddedModel(dm.model, attention, left, left + gap, dm.mask_id)
        collapse = diffusion_engine.collapse_id(dm) if settings.collapse else None
        filled, _ = denoise(model, canvas, left, left + gap, mask_id=dm.mask_id,
                            banned_ids=dm.banned_ids, collapse_id=collapse,
                            shift_logits=dm.shift_logits, temperature=first.temperature,
                            seed=first.seed, **diffusion_engine.schedule_options(settings))
        ms = (time.perf_counter() - start_time) * 1000 / len(batch)
        for i, job in enumerate(batch):
            text, _, kept = diffusion_engine.kept_text(dm, filled[i, :job.gap].tolist())
            text, _ = cut_completion(text, job.request.suffix, job.multiline,
                                     autoregressive.MAX_LINES)
            out.append(self._finish(job, text, dm.name, len(kept), int(model.forwards[i]),
                                    ms + job.length_ms))
        return out


def _pad_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def accepts_padding(model) -> bool:
    params = inspect.signature(model.forward).parameters
    return "attention_mask" in params and "position_ids" in params


class PaddedModel:
    """What `denoise` calls as the model: the real model with the batch's attention mask and
    per-row positions, counting for each row the forwards it still had masks in."""

    def __init__(self, model, attention_mask: torch.Tensor, gap_start: int, gap_end: int,
                 mask_id: int):
        self.model, self.attention_mask = model, attention_mask
        self.position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
        self.gap = (gap_start, gap_end)
        self.mask_id = mask_id
        self.forwards = torch.zeros(attention_mask.shape[0], dtype=torch.long)

    def __call__(self, input_ids: torch.Tensor):
        active = (input_ids[:, self.gap[0]:self.gap[1]] == self.mask_id).any(-1)
        self.forwards += active.cpu().long()
        return self.model(input_ids=input_ids, attention_mask=self.attention_mask,
                          position_ids=self.position_ids)


def _cache_kwarg(model) -> str:
    # transformers renamed `past_key_values` to `cache` (5.2x); accept either, as PrefixKV does
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


@torch.inference_mode()
def decode_batch(model, prompts: list[list[int]], *, max_new_tokens: list[int],
                 stop_ids: set[int], stop_rules: list[Callable[[list[int]], bool] | None],
                 temperatures: list[float], top_ps: list[float], seeds: list[int | None],
                 pad_id: int) -> list[tuple[list[int], int]]:
    """Plain AR decoding of several prompts at once; per row (tokens, forwards).

    Each row follows `speculative.decode.Decoder.generate` without a drafter: a stop token ends
    it (not kept), then the stop rule (token kept), then max_new_tokens. Over the static batch
    cache (`speculative.static.StaticBatch`) where the single path uses the static cache, else
    over HF's forward with a padded cache."""
    rows = dict(max_new_tokens=max_new_tokens, stop_rules=stop_rules,
                temperatures=temperatures, top_ps=top_ps, seeds=seeds)
    cache = None
    try:
        cache = batch_cache(model)
    except Exception as exc:  # noqa: BLE001 -- the HF path still serves the batch
        log.warning("static batch cache unavailable (%s): HF forward instead", exc)
    if cache is not None:
        try:
            out = []
            for at in range(0, len(prompts), cache.BUCKETS[-1]):
                part = slice(at, at + cache.BUCKETS[-1])
                out += _decode(_StaticRows(cache), prompts[part], stop_ids,
                               **{k: v[part] for k, v in rows.items()})
            return out
        except Exception as exc:  # noqa: BLE001 -- a batch is never lost to the fast path
            log.warning("static batch decoding failed (%s): HF forward instead", exc)
    return _decode(_PaddedRows(model, pad_id), prompts, stop_ids, **rows)


def _decode(model_rows, prompts, stop_ids, *, max_new_tokens, stop_rules, temperatures,
            top_ps, seeds) -> list[tuple[list[int], int]]:
    """The per-row decoding rules over either way of running the rows."""
    logits = model_rows.start(prompts, max(max_new_tokens))
    generators = [torch.Generator().manual_seed(s if s is not None else 0) for s in seeds]
    tokens: list[list[int]] = [[] for _ in prompts]
    forwards = [1] * len(prompts)
    active = list(range(len(prompts)))
    while active:
        chosen = _next_tokens(logits, [temperatures[r] for r in active],
                              [top_ps[r] for r in active], [generators[r] for r in active])
        keep, feed = [], []
        for j, (row, token) in enumerate(zip(active, chosen)):
            if token in stop_ids:
                continue
            tokens[row].append(token)
            rule = stop_rules[row]
            if (rule and rule(tokens[row])) or len(tokens[row]) >= max_new_tokens[row]:
                continue
            keep.append(j)
            feed.append(token)
        if not keep:
            break
        if len(keep) < len(active):
            model_rows.keep(keep)
            active = [active[j] for j in keep]
        logits = model_rows.step(feed)
        for row in active:
            forwards[row] += 1
    return [(t, f) for t, f in zip(tokens, forwards)]


class _StaticRows:
    """Rows over the static batch cache: the single path's forward, one slot per row."""

    def __init__(self, cache):
        self.cache = cache

    def start(self, prompts, room):
        return self.cache.start(prompts, room)

    def keep(self, rows):
        self.cache.keep(rows)

    def step(self, feed):
        return self.cache.step(feed)


class _PaddedRows:
    """Rows over HF's forward: left-padded, an attention mask and each row's own positions
    (its first real token at position 0); a row leaves the batch and the cache as it stops."""

    def __init__(self, model, pad_id: int):
        self.model, self.pad_id = model, pad_id
        self.device = next(model.parameters()).device
        self.cache_kw = _cache_kwarg(model)

    def start(self, prompts, room):
        from transformers import DynamicCache

        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p):] = 1
        ids, self.mask = ids.to(self.device), mask.to(self.device)
        positions = (self.mask.cumsum(-1) - 1).clamp_min(0)
        self.cache = DynamicCache()
        logits = self.model(input_ids=ids, attention_mask=self.mask, position_ids=positions,
                            use_cache=True, logits_to_keep=1,
                            **{self.cache_kw: self.cache}).logits[:, -1]
        self.next_position = positions[:, -1] + 1
        return logits

    def keep(self, rows):
        index = torch.tensor(rows, device=self.device)
        self.cache.batch_select_indices(index)
        self.mask, self.next_position = self.mask[index], self.next_position[index]

    def step(self, feed):
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(feed), 1))], dim=1)
        logits = self.model(input_ids=torch.tensor(feed, device=self.device)[:, None],
                            attention_mask=self.mask, position_ids=self.next_position[:, None],
                            use_cache=True, **{self.cache_kw: self.cache}).logits[:, -1]
        self.next_position = self.next_position + 1
        return logits


def _next_tokens(logits: torch.Tensor, temperatures: list[float], top_ps: list[float],
                 generators: list[torch.Generator]) -> list[int]:
    """Greedy rows: argmax, all rows in one host transfer. Sampled rows: each from its own
    generator, drawn exactly as the single-request decoder draws."""
    chosen = logits.argmax(-1).tolist()
    for j, temperature in enumerate(temperatures):
        if temperature > 0:
            chosen[j] = draw(probabilities(logits[j], temperature, top_ps[j]), generators[j])
    return chosen
