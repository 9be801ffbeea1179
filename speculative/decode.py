"""Autoregressive decoding over a KV cache: prefill once, then one token per forward.

A decoding library: it takes a model, token ids and stop conditions, and knows nothing of
editors or files. `stop_rule` lets the caller end decoding on text-level conditions (a newline
in single-line mode, running into the suffix) without this module knowing about text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


class Cancelled(Exception):
    """The caller's cancel check fired between two decoding steps."""


@dataclass
class DecodeResult:
    tokens: list[int]
    forwards: int
    stopped_by: str  # "stop_token", "stop_rule", "max_tokens"


def sample(logits: torch.Tensor, temperature: float, top_p: float,
           generator: torch.Generator | None) -> int:
    """Greedy at temperature 0; otherwise nucleus sampling in fp32."""
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        keep = sorted_probs.cumsum(-1) - sorted_probs < top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.inference_mode()
def decode(model, prompt_ids: list[int], *, max_new_tokens: int, stop_ids: set[int],
           temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
           stop_rule: Callable[[list[int]], bool] | None = None,
           is_cancelled: Callable[[], bool] | None = None) -> DecodeResult:
    from transformers import DynamicCache

    device = next(model.parameters()).device
    generator = None
    if temperature > 0:
        generator = torch.Generator(device="cpu").manual_seed(seed if seed is not None else 0)
    cache = DynamicCache()
    inputs = torch.tensor([prompt_ids], device=device)
    tokens: list[int] = []
    forwards = 0
    while True:
        if is_cancelled and is_cancelled():
            raise Cancelled()
        logits = model(input_ids=inputs, past_key_values=cache, use_cache=True).logits[0, -1]
        forwards += 1
        token = sample(logits.cpu(), temperature, top_p, generator)
        if token in stop_ids:
            return DecodeResult(tokens, forwards, "stop_token")
        tokens.append(token)
        if stop_rule and stop_rule(tokens):
            return DecodeResult(tokens, forwards, "stop_rule")
        if len(tokens) >= max_new_tokens:
            return DecodeResult(tokens, forwards, "max_tokens")
        inputs = torch.tensor([[token]], device=device)
