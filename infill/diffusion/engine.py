"""The diffusion engine: canvas = prefix + masks + suffix, denoised, surplus collapsed."""

from __future__ import annotations

import torch

from infill.autoregressive import MAX_LINES
from infill.context import cut_completion, fit_to_tokens
from infill.diffusion.sampler import denoise
from infill.models.loading import DiffusionModel
from infill.request import InfillRequest

SINGLE_LINE_GAP = 24  # masks for a single line; the surplus collapses into pad tokens
MULTI_LINE_GAP = 64


def gap_size(request: InfillRequest, multiline: bool) -> int:
    return min(request.max_tokens, MULTI_LINE_GAP if multiline else SINGLE_LINE_GAP)


def encode(dm: DiffusionModel, text: str) -> list[int]:
    if not text:
        return []
    return dm.tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)


def build_canvas(dm: DiffusionModel, prefix: str, suffix: str, gap: int) -> tuple[list[int], int]:
    """(canvas ids, gap start)."""
    budget = max(16, dm.context - gap)
    prefix, suffix = fit_to_tokens(prefix, suffix, budget,
                                   lambda p, s: len(encode(dm, p)) + len(encode(dm, s)))
    before = encode(dm, prefix)
    return before + [dm.mask_id] * gap + encode(dm, suffix), len(before)


def generate(dm: DiffusionModel, request: InfillRequest, multiline: bool,
             steps: int | None = None) -> tuple[str, int, int]:
    """(completion text, tokens kept in the gap, forwards)."""
    gap = gap_size(request, multiline)
    canvas, start = build_canvas(dm, request.prefix, request.suffix, gap)
    filled, forwards = denoise(
        dm.model, torch.tensor([canvas], device=dm.device), start, start + gap,
        mask_id=dm.mask_id, steps=steps or gap, banned_ids=dm.banned_ids,
        shift_logits=dm.shift_logits, temperature=request.temperature, seed=request.seed,
        is_cancelled=lambda: request.cancel.cancelled)
    kept = [t for t in filled[0].tolist() if t not in dm.collapse_ids]
    text = dm.tokenizer.decode(kept, skip_special_tokens=True)
    text, _ = cut_completion(text, request.suffix, multiline, MAX_LINES)
    return text, len(kept), forwards
