"""The masked-diffusion sampler (LLaDA-style low-confidence remasking, Fast-dLLM thresholds).

The canvas is prefix + gap + suffix; the gap's masked positions are filled over a few steps.
Each step predicts every masked position at once and commits some of them:
- a fixed schedule (`steps`): the most confident `masked / steps` predictions per step, as
  LLaDA's `generate` does; with steps = gap this is the one-token-per-forward reference;
- a `threshold`: every prediction at least that confident, and at least the best one, so a step
  can commit many tokens (Fast-dLLM's parallel decoding).
Committed tokens stay committed. A collapse token (the pad the model learned to put in the
surplus of an oversized gap) ends the content: once one is committed, the masked positions after
it are filled with it at once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from speculative.cancel import Cancelled


def tokens_per_step(masked: int, steps: int) -> list[int]:
    """How many tokens each step commits: as even as possible, summing to `masked`."""
    base, extra = divmod(masked, steps)
    return [base + (1 if i < extra else 0) for i in range(steps)]


def gumbel_argmax(logits: torch.Tensor, temperature: float,
                  generator: torch.Generator | None) -> torch.Tensor:
    """A sample of softmax(logits / temperature) (argmax at temperature 0), in float64 as in
    LLaDA, since low-precision Gumbel noise biases the sample."""
    if temperature <= 0:
        return logits.argmax(-1)
    noise = torch.rand(logits.shape, generator=generator, dtype=torch.float64).to(logits.device)
    gumbel = -torch.log(-torch.log(noise.clamp_min(1e-20)))
    return (logits.double() / temperature + gumbel).argmax(-1)


def collapse_tail(region: torch.Tensor, mask_id: int, collapse_id: int) -> None:
    """In place: masked positions after a row's first committed collapse token become it."""
    is_collapse = region == collapse_id
    after_first = is_collapse.cumsum(dim=1) > 0
    region.masked_fill_(after_first & (region == mask_id), collapse_id)


@torch.inference_mode()
def denoise(model, canvas: torch.Tensor, gap_start: int, gap_end: int, *, mask_id: int,
            steps: int | None = None, threshold: float | None = None,
            banned_ids: set[int] = frozenset(), collapse_id: int | None = None,
            shift_logits: bool = False, temperature: float = 0.0, seed: int | None = None,
            is_cancelled: Callable[[], bool] | None = None,
            collapse_penalty: float = 0.0) -> tuple[torch.Tensor, int]:
    """Fills the masked positions of canvas[:, gap_start:gap_end]; returns (gap tokens [B, gap],
    forwards). Give `threshold` for parallel commits, else `steps` (default: one per token).
    collapse_penalty is subtracted from the collapse token's logit: a prior against ending
    the content early, for a model that learned to expect many pads in a gap."""
    canvas = canvas.clone()
    region = canvas[:, gap_start:gap_end]  # a view: writes go into canvas
    masked = int((region == mask_id).sum(dim=1).max())
    if masked == 0:
        return region, 0
    schedule = None if threshold is not None else tokens_per_step(masked, max(1, min(steps or masked, masked)))
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
        if collapse_id is not None and collapse_penalty:
            gap_logits[..., collapse_id] -= collapse_penalty
        predicted = gumbel_argmax(gap_logits, temperature, generator)
        confidence = torch.softmax(gap_logits, -1).gather(-1, predicted[..., None])[..., 0]
        still_masked = region == mask_id
        confidence = torch.where(still_masked, confidence, float("-inf"))
        if schedule is not None:
            count = schedule[min(forwards - 1, len(schedule) - 1)]
            chosen = torch.zeros_like(still_masked)
            chosen.scatter_(1, confidence.topk(count, dim=-1).indices, True)
        else:
            chosen = confidence >= threshold
            chosen.scatter_(1, confidence.argmax(-1, keepdim=True), True)  # progress every step
        chosen &= still_masked
        region[chosen] = predicted[chosen]
        if collapse_id is not None:
            collapse_tail(region, mask_id, collapse_id)
    return region, forwards
