"""The masked-diffusion sampler (LLaDA-style low-confidence remasking, Fast-dLLM thresholds).

The canvas is prefix + gap + suffix; the gap's masked positions are filled over a few steps.
Each step predicts every masked position at once and commits some of them:
- a fixed schedule (`steps`): the most confident `masked / steps` predictions per step, as
  LLaDA's `generate` does; with steps = gap this is the one-token-per-forward reference;
- otherwise the `per_forward` most confident predictions per step (1: the one-token-per-forward
  reference), and with a `threshold` every prediction at least that confident besides them
  (Fast-dLLM's parallel decoding);
- with `spaced_first`, the first forward commits no two neighbouring positions: predicted at
  once over a masked gap, neighbours do not see each other and often agree on a token each
  (`x = = =`, `self.self.`); where per_forward allows, the first takes a maximal such set, so
  every position left has a committed neighbour and the second forward fills the rest (on
  SAFIM's block rows at the true length: exact match 0% at 6 or 8 per forward without this,
  the reference's 1.5% at 16 per forward with it, in 2.2 forwards; BENCHMARKS.md);
- optionally in semi-autoregressive `block`s (LLaDA): only the leftmost block of the gap that
  still holds masks is filled, left to right block by block, each seeing the whole canvas.
Committed tokens stay committed.

Unknown length (a `collapse_id`: the pad the model learned to put in the surplus of an oversized
gap): the content is the gap's start up to its first pad, and each position's pad probability is
the model's belief that the content ended before it. Pads are never committed token by token by
confidence: a content position's probability spreads over many tokens, so a pad at 20% often
wins its argmax and the content stops after a token or two. Instead the first forward decides
the length: the content ends at the first masked position after the committed content whose
pad probability reaches `pad_threshold`; every masked position from there on becomes pad, and
the positions before it are filled with content (pads excluded). A gap that already holds a pad
(syntax-guided remasking denoises a filled gap again) keeps its length.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from speculative.cancel import Cancelled
from speculative.sampling import nucleus

# where the pad's probability ends the content: 0.7 gave the best edit similarity of 0.5, 0.7
# and 0.85 on held-out lines (BENCHMARKS.md, diffusion engine)
PAD_THRESHOLD = 0.7


def tokens_per_step(masked: int, steps: int) -> list[int]:
    """How many tokens each step commits: as even as possible, summing to `masked`."""
    base, extra = divmod(masked, steps)
    return [base + (1 if i < extra else 0) for i in range(steps)]


def gumbel_argmax(logits: torch.Tensor, temperature: float,
                  generator: torch.Generator | None, top_p: float = 1.0) -> torch.Tensor:
    """A sample of softmax(logits / temperature) within the top-p nucleus (argmax at
    temperature 0), in float64 as in LLaDA, since low-precision Gumbel noise biases the
    sample. Each row and position draws its own noise."""
    if temperature <= 0:
        return logits.argmax(-1)
    noise = torch.rand(logits.shape, generator=generator, dtype=torch.float64).to(logits.device)
    gumbel = -torch.log(-torch.log(noise.clamp_min(1e-20)))
    return (nucleus(logits.double() / temperature, top_p) + gumbel).argmax(-1)


def end_content(region: torch.Tensor, mask_id: int, collapse_id: int,
                pad_probability: torch.Tensor, pad_threshold: float) -> None:
    """In place: in rows without a pad, every masked position from the first one past the last
    content token whose pad probability reaches the threshold becomes pad."""
    masked = region == mask_id
    content = ~masked & (region != collapse_id)
    past_content = content.flip(1).cumsum(1).flip(1) == 0  # after the last content token
    undecided = ~(region == collapse_id).any(1, keepdim=True)
    ends = undecided & masked & past_content & (pad_probability >= pad_threshold)
    region[(ends.cumsum(1) > 0) & masked] = collapse_id


def apart_best(confidence: torch.Tensor, count: int) -> torch.Tensor:
    """[B, L] bool: up to `count` of the most confident positions per row, no two of them
    neighbours, taken greedily by confidence (positions at -inf are never taken)."""
    confidence = confidence.clone()
    chosen = torch.zeros_like(confidence, dtype=torch.bool)
    where = torch.arange(confidence.shape[1], device=confidence.device)
    for _ in range(min(count, (confidence.shape[1] + 1) // 2)):  # no more fit apart
        value, best = confidence.max(1, keepdim=True)
        chosen |= (where == best) & (value > float("-inf"))
        confidence[(where - best).abs() <= 1] = float("-inf")
    return chosen


@torch.inference_mode()
def denoise(model, canvas: torch.Tensor, gap_start: int, gap_end: int, *, mask_id: int,
            steps: int | None = None, threshold: float | None = None, per_forward: int = 1,
            banned_ids: set[int] = frozenset(), collapse_id: int | None = None,
            shift_logits: bool = False, temperature: float = 0.0, top_p: float = 1.0,
            seed: int | None = None, is_cancelled: Callable[[], bool] | None = None,
            pad_threshold: float = PAD_THRESHOLD, block: int | None = None,
            spaced_first: bool = False) -> tuple[torch.Tensor, int]:
    """Fills the masked positions of canvas[:, gap_start:gap_end]; returns (gap tokens [B, gap],
    forwards). `steps` for a fixed schedule, else `per_forward` (and `threshold`) per step.
    With a `collapse_id` the content's length is decided as the module docstring says."""
    canvas = canvas.clone()
    region = canvas[:, gap_start:gap_end]  # a view: writes go into canvas
    masked = int((region == mask_id).sum(dim=1).max())
    if masked == 0:
        return region, 0
    schedule = (tokens_per_step(masked, max(1, min(steps, masked)))
                if steps and threshold is None else None)
    generator = torch.Generator().manual_seed(seed if seed is not None else 0)
    banned = torch.tensor(sorted(set(banned_ids) | {mask_id}), device=canvas.device)
    forwards = 0
    while (region == mask_id).any():
        if is_cancelled and is_cancelled():
            raise Cancelled()
        logits = model(input_ids=canvas).logits
        forwards += 1
        if shift_logits:  # Dream: the logits at i - 1 predict the token at i
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        gap_logits = logits[:, gap_start:gap_end].float()
        gap_logits[..., banned] = float("-inf")
        if collapse_id is not None:
            if forwards == 1:  # the first forward decides where the content ends
                end_content(region, mask_id, collapse_id,
                            torch.softmax(gap_logits, -1)[..., collapse_id], pad_threshold)
            gap_logits[..., collapse_id] = float("-inf")  # the rest is content
        still_masked = region == mask_id
        if forwards == 1 and collapse_id is not None and not still_masked.any():
            break  # the first forward ended the content at the gap's start
        if block:  # only the leftmost block with masks, in each row
            first = still_masked.float().argmax(1, keepdim=True)  # a row's first mask
            start = first - first % block
            where = torch.arange(region.shape[1], device=region.device)
            still_masked &= (where >= start) & (where < start + block)
        predicted = gumbel_argmax(gap_logits, temperature, generator, top_p)
        confidence = torch.softmax(gap_logits, -1).gather(-1, predicted[..., None])[..., 0]
        confidence = torch.where(still_masked, confidence, float("-inf"))
        if schedule is not None:
            count = schedule[min(forwards - 1, len(schedule) - 1)]
            chosen = torch.zeros_like(still_masked)
            chosen.scatter_(1, confidence.topk(count, dim=-1).indices, True)
        else:
            chosen = (confidence >= threshold if threshold is not None
                      else torch.zeros_like(still_masked))
            if spaced_first and forwards == 1:
                chosen |= apart_best(confidence, per_forward)
            else:
                best = confidence.topk(min(per_forward, confidence.shape[1]), dim=-1).indices
                chosen.scatter_(1, best, True)  # progress every step
        chosen &= still_masked
        region.copy_(torch.where(chosen, predicted, region))  # no host sync, unlike indexing
    return region, forwards
