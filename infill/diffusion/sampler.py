"""The masked-diffusion sampler (LLaDA-style low-confidence remasking).

The canvas is prefix + gap + suffix; the gap starts as mask tokens. Each step predicts every
masked position at once and commits the most confident predictions; committed tokens stay.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from speculative.decode import Cancelled


def tokens_per_step(gap: int, steps: int) -> list[int]:
    """How many tokens each step commits: as even as possible, summing to the gap."""
    base, extra = divmod(gap, steps)
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


@torch.inference_mode()
def denoise(model, canvas: torch.Tensor, gap_start: int, gap_end: int, *, mask_id: int,
            steps: int, banned_ids: set[int] = frozenset(), shift_logits: bool = False,
            temperature: float = 0.0, seed: int | None = None,
            is_cancelled: Callable[[], bool] | None = None) -> tuple[torch.Tensor, int]:
    """Fills canvas[:, gap_start:gap_end] (all masks); returns (gap tokens [B, gap], forwards)."""
    canvas = canvas.clone()
    gap = gap_end - gap_start
    steps = max(1, min(steps, gap))
    generator = torch.Generator().manual_seed(seed if seed is not None else 0)
    banned = torch.tensor(sorted(banned_ids | {mask_id}), device=canvas.device)
    forwards = 0
    for count in tokens_per_step(gap, steps):
        if is_cancelled and is_cancelled():
            raise Cancelled()
        logits = model(input_ids=canvas).logits
        forwards += 1
        if shift_logits:  # Dream: the logits at i - 1 predict the token at i
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        gap_logits = logits[:, gap_start:gap_end].float()
        gap_logits[..., banned] = float("-inf")
        predicted = gumbel_argmax(gap_logits, temperature, generator)
        confidence = torch.softmax(gap_logits, -1).gather(-1, predicted[..., None])[..., 0]
        still_masked = canvas[:, gap_start:gap_end] == mask_id
        confidence = torch.where(still_masked, confidence, float("-inf"))
        chosen = confidence.topk(count, dim=-1).indices
        region = canvas[:, gap_start:gap_end]
        region.scatter_(1, chosen, predicted.gather(1, chosen))
    return canvas[:, gap_start:gap_end], forwards
