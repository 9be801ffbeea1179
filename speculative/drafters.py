"""Drafters propose the next few tokens cheaply; the target verifies them in one forward.

- `NgramDrafter`: prompt lookup over everything the target sees, the FIM prefix *and suffix*
  included (editing code repeats itself); its drafts carry no probabilities (q = 1).
- `ModelDrafter`: a small model with the same tokenizer, sampling with the target's settings,
  stopping early when its confidence drops below `p_min` (llama.cpp's draft-p-min).
- `CombinedDrafter`: the n-gram draft when one exists, else the model's.
- `AdaptiveLength`: the draft length follows the acceptance history.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from speculative.cache import PrefixKV
from speculative.sampling import draw, probabilities


@dataclass
class Draft:
    tokens: list[int]
    q: torch.Tensor | None  # [len(tokens), V] draft distributions; None means q = 1
    forwards: int = 0


class NgramDrafter:
    def __init__(self, max_ngram: int = 3, min_ngram: int = 1):
        self.max_ngram, self.min_ngram = max_ngram, min_ngram

    def propose(self, context: list[int], k: int, temperature: float = 0.0, top_p: float = 1.0,
                generator: torch.Generator | None = None) -> Draft:
        """The k tokens that followed the latest earlier occurrence of the context's last n-gram."""
        for n in range(self.max_ngram, self.min_ngram - 1, -1):
            if len(context) <= n:
                continue
            tail = context[-n:]
            for start in range(len(context) - n - 1, -1, -1):
                if context[start:start + n] == tail:
                    follow = context[start + n:start + n + k]
                    if follow:
                        return Draft(follow, None)
        return Draft([], None)


class ModelDrafter:
    def __init__(self, model, p_min: float = 0.0):
        self.kv = PrefixKV(model)
        self.p_min = p_min

    def propose(self, context: list[int], k: int, temperature: float = 0.0, top_p: float = 1.0,
                generator: torch.Generator | None = None) -> Draft:
        if k <= 0:
            return Draft([], None)
        logits, _ = self.kv.prefill(context)
        tokens, dists, forwards = [], [], 1
        while True:
            q = probabilities(logits, temperature, top_p)
            token = int(q.argmax()) if temperature <= 0 else draw(q, generator)
            if tokens and float(q[token]) < self.p_min:
                break
            tokens.append(token)
            dists.append(q)
            if len(tokens) == k:
                break
            logits = self.kv.feed([token])[-1]
            forwards += 1
        return Draft(tokens, torch.stack(dists).cpu(), forwards)


class CombinedDrafter:
    def __init__(self, ngram: NgramDrafter, model: ModelDrafter):
        self.ngram, self.model = ngram, model

    def propose(self, context, k, temperature=0.0, top_p=1.0, generator=None) -> Draft:
        draft = self.ngram.propose(context, k, temperature, top_p, generator)
        if len(draft.tokens) >= min(k, 2):
            return draft
        return self.model.propose(context, k, temperature, top_p, generator)


class AdaptiveLength:
    """Grows the draft after a fully accepted round, shrinks it to just past the last accepted
    token after a rejection."""

    def __init__(self, start: int = 4, minimum: int = 1, maximum: int = 16):
        self.k, self.minimum, self.maximum = start, minimum, maximum

    def update(self, proposed: int, accepted: int) -> None:
        if proposed and accepted == proposed:
            self.k = min(self.maximum, self.k + 2)
        elif proposed:
            self.k = max(self.minimum, accepted + 1)


class FixedLength:
    def __init__(self, k: int):
        self.k = k

    def update(self, proposed: int, accepted: int) -> None:
        pass
