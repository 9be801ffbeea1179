"""A model's KV cache paired with the token ids it holds.

Rolling back after rejected drafts only moves the length (`crop`), and a new prompt that shares
a prefix with the cached ids (an editor sends nearly the same prompt at every keystroke) only
runs the model over what changed.
"""

from __future__ import annotations

import inspect

import torch


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class PrefixKV:
    def __init__(self, model):
        self.model = model
        self.device = next(model.parameters()).device
        self.cache = None
        self.ids: list[int] = []
        # transformers renamed `past_key_values` to `cache` (5.2x); accept either
        forward_params = inspect.signature(type(model).forward).parameters  # not a wrapper
        self.cache_kwarg = "cache" if "cache" in forward_params else "past_key_values"

    def reset(self) -> None:
        self.cache, self.ids = None, []

    def rollback(self, length: int) -> None:
        if length < len(self.ids):
            self.cache.crop(length - len(self.ids))  # negative: drop that many (all versions)
            self.ids = self.ids[:length]

    def feed(self, ids: list[int]) -> torch.Tensor:
        """Append ids; returns the logits at their positions, [len(ids), V]."""
        from transformers import DynamicCache

        if self.cache is None:
            self.cache = DynamicCache()
        inputs = torch.tensor([ids], device=self.device)
        kwargs = {self.cache_kwarg: self.cache}
        logits = self.model(input_ids=inputs, use_cache=True, **kwargs).logits[0]
        self.ids = self.ids + list(ids)
        return logits

    def feed_argmax(self, ids: list[int]) -> list[int]:
        """Append ids; returns the argmax token at each of their positions (greedy decoding)."""
        return self.feed(ids).argmax(-1).tolist()

    def prefill(self, prompt: list[int]) -> tuple[torch.Tensor, int]:
        """Logits after the whole prompt, and how many prompt tokens were reused from the cache."""
        reuse = min(common_prefix(self.ids, prompt), len(prompt) - 1)
        if reuse <= 0:
            self.reset()
            reuse = 0
        else:
            self.rollback(reuse)
        return self.feed(prompt[reuse:])[-1], reuse
