"""Drafters propose the next few tokens cheaply; the target verifies them in one forward.

- `NgramDrafter`: prompt lookup over everything the target sees, the FIM prefix *and suffix*
  included (editing code repeats itself); its drafts carry no probabilities (q = 1).
- `ModelDrafter`: a small model with the same tokenizer, sampling with the target's settings,
  stopping early when its confidence drops below `p_min` (llama.cpp's draft-p-min).
- `CombinedDrafter`: the n-gram draft when one exists, else the model's.
- `AdaptiveLength`: the draft length follows the acceptance history.

`propose(context, k, ..., free_k=None)`: k bounds a draft that costs forwards; `free_k`, when
the caller gives it, bounds one that does not (an n-gram draft), which may then be longer.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import torch

from speculative.sampling import draw, probabilities
from speculative.static import kv_cache


@dataclass
class Draft:
    tokens: list[int]
    q: torch.Tensor | None  # [len(tokens), V] draft distributions; None means q = 1
    # (greedy drafts carry none either: greedy acceptance compares tokens only)
    forwards: int = 0


class NgramDrafter:
    def __init__(self, max_ngram: int = 3, min_ngram: int = 1):
        self.max_ngram, self.min_ngram = max_ngram, min_ngram

    def propose(self, context: list[int], k: int, temperature: float = 0.0, top_p: float = 1.0,
                generator: torch.Generator | None = None, free_k: int | None = None) -> Draft:
        """The k tokens that followed the latest earlier occurrence of the context's last n-gram."""
        k = k if free_k is None else free_k
        if k <= 0:
            return Draft([], None)
        try:  # the search runs in C over the ids' bytes: it is on every round's critical path
            data = array("I", context).tobytes()
        except OverflowError:
            data = None
        for n in range(self.max_ngram, self.min_ngram - 1, -1):
            if len(context) <= n:
                continue
            if data is None:
                start = _latest_slow(context, n)
            else:
                start = _latest(data, array("I", context[-n:]).tobytes(),
                                (len(context) - 1) * 4, 4)
            if start >= 0:
                return Draft(context[start + n:start + n + k], None)
        return Draft([], None)


def _latest(data: bytes, tail: bytes, end: int, width: int) -> int:
    """Token index of the latest occurrence of `tail` inside data[:end], aligned to whole
    tokens of `width` bytes; -1 when there is none."""
    while True:
        at = data.rfind(tail, 0, end)
        if at < 0 or at % width == 0:
            return at // width if at >= 0 else -1
        end = at + len(tail) - 1  # an unaligned match: look further left


def _latest_slow(context: list[int], n: int) -> int:
    tail = context[-n:]
    for start in range(len(context) - n - 1, -1, -1):
        if context[start:start + n] == tail:
            return start
    return -1


class ModelDrafter:
    def __init__(self, model, p_min: float = 0.0):
        self.kv = kv_cache(model)
        self.p_min = p_min

    def propose(self, context: list[int], k: int, temperature: float = 0.0, top_p: float = 1.0,
                generator: torch.Generator | None = None, free_k: int | None = None) -> Draft:
        if k <= 0:
            return Draft([], None)
        logits, _ = self.kv.prefill(context)
        tokens, dists, forwards = [], [], 1
        while True:
            if temperature <= 0:  # the argmax, and its softmax probability for p_min
                best = logits.float().argmax()
                token, confidence = torch.stack(
                    (best.float(), torch.softmax(logits.float(), -1)[best])).tolist()
                token, q = int(token), None
            else:
                q = probabilities(logits, temperature, top_p)
                token = draw(q, generator)
                confidence = float(q[token])
            if tokens and confidence < self.p_min:
                break
            tokens.append(token)
            if q is not None:
                dists.append(q)
            if len(tokens) == k:
                break
            logits = self.kv.feed([token])[-1]
            forwards += 1
        return Draft(tokens, torch.stack(dists).cpu() if dists else None, forwards)


class CombinedDrafter:
    def __init__(self, ngram: NgramDrafter, model: ModelDrafter):
        self.ngram, self.model = ngram, model

    def propose(self, context, k, temperature=0.0, top_p=1.0, generator=None,
                free_k=None) -> Draft:
        draft = self.ngram.propose(context, k, temperature, top_p, generator, free_k)
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
