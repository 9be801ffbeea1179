"""The diffusion engine: canvas = prefix + masks + suffix, denoised, surplus collapsed.

The gap's length is unknown. Where an AR model is at hand, the gap gets as many masks as the AR
engine's greedy completion of the same request has tokens (`ar_gap`, the engine's default).
Otherwise the canvas gets more masks than a line (or a few lines) needs; the shipped model was
trained to fill the surplus with pad tokens (`collapse` ids), which are dropped.
`DiffusionSettings` holds the knobs the benchmark compares; `default_settings` the engine's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch

from infill.autoregressive import MAX_LINES
from infill.context import cut_completion, fit_to_tokens
from infill.diffusion import graphs
from infill.diffusion.graphs import GraphedModel
from infill.diffusion.sampler import PAD_THRESHOLD, denoise
from infill.models.loading import DiffusionModel
from infill.request import InfillRequest


@dataclass(frozen=True)
class DiffusionSettings:
    single_line_gap: int = 24  # masks for a single line
    multi_line_gap: int = 64
    steps: int | None = None  # a fixed schedule; None: per_forward (and threshold) per forward
    threshold: float | None = None  # commit every prediction this confident (parallel decoding)
    per_forward: int = 1  # and at least this many per forward (the most confident)
    block: int | None = None  # semi-autoregressive blocks (4 measured worse than none)
    collapse: bool = True  # unknown length: the content ends at a pad (see sampler)
    remask_rounds: int = 2  # syntax-guided remasking: re-denoise tokens at a new syntax error
    pad_threshold: float = PAD_THRESHOLD  # unknown length: where the pad ends the content
    spaced_first: bool = False  # the first forward commits no two neighbours (see sampler)


# How the engine knows a gap's length (`ModelConfig.diffusion_length`): "ar", the length of the
# AR engine's greedy completion of the same request (`ar_gap`); "pad", an oversized gap whose
# surplus the model fills with pads (see sampler). On 600 held-out lines on an H200 the AR length
# came within 2.2 points of the true length's exact match (6.3% against 8.5%), the pad within
# 5.2 (3.3%) (BENCHMARKS.md, tenth session).
LENGTHS = ("ar", "pad")


def default_settings(length: str, multiline: bool) -> DiffusionSettings:
    """The engine's schedule for a gap whose length comes from `length` (BENCHMARKS.md, tenth
    session). An exact gap for a line is filled 16 tokens per forward, the first forward
    committing no two neighbours: the same exact match as one per forward on held-out lines
    (6.3%), in a quarter of the forwards. A few lines keep one per forward: the AR length is
    often too long there, and parallel commits on a gap too long wrote poorly (SAFIM block:
    edit similarity 0.031 against 0.081). An oversized gap keeps one per forward as well: with
    the pad to place, 8 or 16 per forward lost every exact match."""
    if length not in LENGTHS:
        raise ValueError(f"unknown diffusion length {length!r}: use one of {', '.join(LENGTHS)}")
    if length == "pad":
        return DiffusionSettings()
    if multiline:
        return DiffusionSettings(collapse=False)
    return DiffusionSettings(per_forward=16, spaced_first=True, collapse=False)


def schedule_options(settings: DiffusionSettings) -> dict:
    """The settings that `sampler.denoise` takes as they are (one place for both engines)."""
    return {"steps": settings.steps, "threshold": settings.threshold,
            "per_forward": settings.per_forward, "pad_threshold": settings.pad_threshold,
            "block": settings.block, "spaced_first": settings.spaced_first}


def gap_size(request: InfillRequest, multiline: bool, settings: DiffusionSettings) -> int:
    return min(request.max_tokens,
               settings.multi_line_gap if multiline else settings.single_line_gap)


def ar_gap(ar, dm: DiffusionModel, request: InfillRequest, multiline: bool,
           settings: DiffusionSettings = DiffusionSettings(), drafter=None) -> int:
    """A length prior from the AR engine: as many masks as the AR model's greedy completion of
    this request has tokens (in the diffusion model's tokenizer), at most the fixed gap; 0 when
    the AR model completes nothing. Denoise such a gap without the pad's collapse: the
    first forward's pad probabilities over an oversized gap are nearly the same on every line
    (on 200 held-out lines they put the content's end at the true length for 7% of them, 5
    tokens off on average), while the AR completion's length is exact for 16.5% (BENCHMARKS.md,
    tenth session), so slack for the pad to decide gives back what the prior brings."""
    from infill import autoregressive

    text, _ = autoregressive.generate(ar, replace(request, temperature=0.0), multiline, drafter)
    return gap_for_text(dm, text, request, multiline, settings)


def gap_for_text(dm: DiffusionModel, text: str, request: InfillRequest, multiline: bool,
                 settings: DiffusionSettings = DiffusionSettings()) -> int:
    """The masks for `text`'s tokens in the diffusion model's tokenizer, at most the fixed gap."""
    return min(gap_size(request, multiline, settings), len(encode(dm, text)))


def encode(dm: DiffusionModel, text: str) -> list[int]:
    if not text:
        return []
    return dm.tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)


CANVAS_SLACK = 64  # tokens of text fitted beyond the budget, then cut to it exactly


def build_canvas(dm: DiffusionModel, prefix: str, suffix: str, gap: int) -> tuple[list[int], int]:
    """(canvas ids, gap start). A document longer than the model's context gives a canvas of
    exactly the context: the text is fitted by characters with some slack, then the prefix's
    first tokens (the suffix's last where the prefix is short) go, so requests share one
    canvas shape and with it one captured graph (`graphs.py`)."""
    budget = max(16, dm.context - gap)
    prefix, suffix = fit_to_tokens(prefix, suffix, budget + CANVAS_SLACK,
                                   lambda p, s: len(encode(dm, p)) + len(encode(dm, s)))
    before, after = encode(dm, prefix), encode(dm, suffix)
    excess = max(0, len(before) + len(after) - budget)
    cut = min(excess, len(before))
    before, after = before[cut:], after[:len(after) - (excess - cut)]
    return before + [dm.mask_id] * gap + after, len(before)


def forward_of(dm: DiffusionModel):
    """The model as the sampler calls it: through CUDA graphs on a GPU for a model small enough
    to be launch-bound (`graphs.py`; INFILL_DIFFUSION_GRAPHS=0 turns them off)."""
    if dm.graphed is None:
        small = sum(p.numel() for p in dm.model.parameters()) <= graphs.MAX_PARAMETERS
        wanted = os.environ.get("INFILL_DIFFUSION_GRAPHS", "1") != "0"
        dm.graphed = GraphedModel(dm.model) if dm.device.type == "cuda" and small and wanted \
            else dm.model
    return dm.graphed


def collapse_id(dm: DiffusionModel) -> int | None:
    """The token the model fills a gap's surplus with: pad if it has one, else EOS."""
    pad = dm.tokenizer.pad_token_id
    if pad in dm.collapse_ids:
        return pad
    return min(dm.collapse_ids) if dm.collapse_ids else None


def generate(dm: DiffusionModel, request: InfillRequest, multiline: bool,
             settings: DiffusionSettings = DiffusionSettings(),
             gap: int | None = None) -> tuple[str, int, int]:
    """(completion text, tokens kept in the gap, forwards) of one candidate."""
    texts, kept, forwards = generate_candidates(dm, request, multiline, settings, gap, rows=1)
    return texts[0], kept[0], forwards


def generate_candidates(dm: DiffusionModel, request: InfillRequest, multiline: bool,
                        settings: DiffusionSettings = DiffusionSettings(),
                        gap: int | None = None, rows: int = 1) -> tuple[list[str], list[int], int]:
    """(a completion text per row, tokens kept per row, forwards): `rows` candidates denoised
    together as one batch, each drawing its own sampling noise (identical when greedy). `gap`
    fixes the number of masks (the benchmark's oracle length, or `ar_gap`'s prior; 0 gives
    empty completions); by default it comes from the settings.

    Syntax-guided remasking: when a row's filled gap introduces a tree-sitter error, the tokens
    it touches are masked again and that row denoised once more (at most `remask_rounds`
    times), the rest of its gap kept as context."""
    gap = gap_size(request, multiline, settings) if gap is None else gap
    if gap == 0:  # nothing to fill (an AR length prior of no tokens)
        return [""] * rows, [0] * rows, 0
    canvas_ids, start = build_canvas(dm, request.prefix, request.suffix, gap)
    canvas = torch.tensor([canvas_ids] * rows, device=dm.device)
    forwards, rounds = 0, 0
    while True:
        filled, n = denoise(
            forward_of(dm), canvas, start, start + gap, mask_id=dm.mask_id,
            banned_ids=dm.banned_ids,
            collapse_id=collapse_id(dm) if settings.collapse else None,
            shift_logits=dm.shift_logits, temperature=request.temperature, top_p=request.top_p,
            seed=request.seed, is_cancelled=lambda: request.cancel.cancelled,
            **schedule_options(settings))
        forwards += n
        canvas[:, start:start + gap] = filled
        results = [kept_text(dm, row) for row in filled.tolist()]
        if rounds >= settings.remask_rounds:
            break
        remasked = False
        for r, (text, kept_at, kept) in enumerate(results):
            for k in tokens_at_new_errors(dm, request, text, kept):
                canvas[r, start + kept_at[k]] = dm.mask_id
                remasked = True
        if not remasked:
            break
        rounds += 1
    texts = [cut_completion(text, request.suffix, multiline, MAX_LINES)[0]
             for text, _, _ in results]
    return texts, [len(kept) for _, _, kept in results], forwards


def kept_text(dm: DiffusionModel, gap_tokens: list[int]) -> tuple[str, list[int], list[int]]:
    """(text, gap positions kept, tokens kept): the gap without its collapse tokens."""
    kept_at = [i for i, t in enumerate(gap_tokens) if t not in dm.collapse_ids]
    kept = [gap_tokens[i] for i in kept_at]
    return dm.tokenizer.decode(kept, skip_special_tokens=True), kept_at, kept


def tokens_at_new_errors(dm: DiffusionModel, request: InfillRequest, text: str,
                         kept: list[int]) -> list[int]:
    """Indices into `kept` of the tokens touching a syntax error the completion introduced
    (and one token either side: the error is often reported next to its cause)."""
    from infill import syntax

    language = syntax.language_for(request.language, request.path)
    if language is None or not kept:
        return []
    verdict = syntax.check(request.prefix, text, request.suffix, language)
    if verdict.valid or not verdict.new_errors:
        return []
    base = len(request.prefix.encode("utf-8"))
    ends, total = [], 0
    for k in range(len(kept)):  # byte end of each token, from the cumulative decode
        total = len(dm.tokenizer.decode(kept[: k + 1], skip_special_tokens=True).encode("utf-8"))
        ends.append(total)
    starts = [0] + ends[:-1]
    touched = set()
    for error in verdict.new_errors:
        lo, hi = error.start_byte - base, max(error.end_byte - base, error.start_byte - base + 1)
        for k, (a, b) in enumerate(zip(starts, ends)):
            if a < hi and b > lo or (a == b == lo):
                touched.update((k - 1, k, k + 1))
    return sorted(k for k in touched if 0 <= k < len(kept))
