"""Drafters propose the next few tokens cheaply; the target verifies them in one forward.

- `NgramDrafter`: prompt lookup over everything the target sees, the FIM prefix *and suffix*
  included (editing code repeats itself), the earlier occurrences voting on the continuation;
  its drafts carry no probabilities (q = 1).
- `ModelDrafter`: a small model with the same tokenizer, sampling with the target's settings,
  stopping early when its confidence drops below `p_min` (llama.cpp's draft-p-min).
- `CombinedDrafter`: the n-gram draft when one exists, else the model's.
- `AdaptiveLength`: the draft length follows the acceptance history.

`propose(context, k, ..., free_k=None)`: k bounds a draft that costs forwards; `free_k`, when
the caller gives it, bounds one that does not (an n-gram draft), which may then be longer. A
decoder passes the same context list at every round, grown in place by the tokens it accepted
(the n-gram index then extends rather than rescans), and may call `prepare(context)` first,
while the target's prefill runs.
"""

from __future__ import annotations

import threading
from collections import defaultdict
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


# A free draft (`free_k`) from a match of the last token alone stops here: with the pending
# token, an 8-token verify step, which on a GPU costs what a decode step does, where one of 16
# costs ~10% more; and such drafts are seldom accepted past 7 tokens (BENCHMARKS.md).
WEAK_FREE_DRAFT = 7


class NgramDrafter:
    """Prompt lookup with a vote: the latest `candidates` earlier occurrences of the context's last
    token each propose what followed them, weighted by 8 ** (how many tokens before them match the
    context's tail, at most `max_ngram`), so the longest matches lead and agreeing ones add up;
    the draft follows the heaviest continuation token by token (the latest one on ties).

    Where the last token never occurred before, it is taken for a changed token in a repeated
    span: the candidates are the occurrences of the token before it, and each proposes what
    followed the token after it. Matches shorter than `min_ngram` tokens are not candidates.
    A free draft (`free_k`) whose candidates match one token only stops at `weak_free_k`.
    """

    def __init__(self, max_ngram: int = 8, min_ngram: int = 1, candidates: int = 32,
                 weak_free_k: int | None = WEAK_FREE_DRAFT):
        self.max_ngram, self.min_ngram, self.candidates = max_ngram, min_ngram, candidates
        self.weak_free_k = weak_free_k
        self._local = threading.local()  # each thread's index (`_Index`) of its last context

    def prepare(self, context: list[int]) -> None:
        """Index a context ahead of the first `propose` (the decoder calls it while the
        target's prefill runs on the GPU)."""
        self._index_of(context)

    def propose(self, context: list[int], k: int, temperature: float = 0.0, top_p: float = 1.0,
                generator: torch.Generator | None = None, free_k: int | None = None) -> Draft:
        weak_k = None
        if free_k is not None:
            k, weak_k = free_k, self.weak_free_k
        if k <= 0 or len(context) < 2:
            return Draft([], None)
        return Draft(self.lookup(context, k, weak_k)[1], None)

    def lookup(self, context: list[int], k: int, weak_k: int | None = None
               ) -> tuple[dict[int, int], list[int]]:
        """({where a candidate's continuation starts: its weight}, the vote's draft of up to k
        tokens, or of up to weak_k where no candidate matches more than the last token); both
        empty where nothing matches."""
        where = self._index_of(context).where
        for skip in (0, 1):  # skip = 1: the last token taken for a changed one
            starts = self._matches(context, where, skip)
            if starts:
                if weak_k is not None and max(starts.values()) < 8 ** 2:  # 8 ** match length
                    k = min(k, weak_k)
                return starts, self._vote(context, starts, k)
        return {}, []

    def _index_of(self, context: list[int]) -> "_Index":
        """The positions of each token of `context`: the same list object grown since the last
        call (a decoder appends the tokens it accepts) extends the index; another starts a new
        one. It is on every round's critical path: no rescan of the context."""
        index = getattr(self._local, "index", None)
        if index is None or index.context is not context or len(context) < index.length:
            index = self._local.index = _Index(context)
        index.extend()
        return index

    def _matches(self, context: list[int], where: dict[int, list[int]], skip: int
                 ) -> dict[int, int]:
        """{where the continuation starts: weight}, latest first, for the occurrences of
        context[-1 - skip] before it."""
        end = len(context) - 1 - skip  # the matched tail is context[:end + 1]
        if end < 1:
            return {}
        starts = {}
        for at in reversed(where[context[end]]):
            if at >= end:  # the tail itself (and, skipping, the token after it)
                continue
            length = 1
            while (length < self.max_ngram and length <= at
                   and context[at - length] == context[end - length]):
                length += 1
            if length >= self.min_ngram:
                starts[at + 1 + skip] = 8 ** length
            if len(starts) == self.candidates:
                break
        return starts

    @staticmethod
    def _vote(context: list[int], starts: dict[int, int], k: int) -> list[int]:
        """Up to k tokens: at each step the token the most weight continues with, keeping the
        candidates that agree with it; a single candidate is copied through."""
        draft = []
        while starts and len(draft) < k:
            if len(starts) == 1:
                (at,) = starts
                return draft + context[at:at + k - len(draft)]
            tally: dict[int, int] = {}
            for at, weight in starts.items():
                tally[context[at]] = tally.get(context[at], 0) + weight
            token = max(tally, key=tally.__getitem__)  # the first, so the latest, on ties
            draft.append(token)
            starts = {at + 1: w for at, w in starts.items()
                      if context[at] == token and at + 1 < len(context)}
        return draft


class _Index:
    """Where each token of a growing context occurs: {token: its positions, ascending}."""

    def __init__(self, context: list[int]):
        self.context, self.length = context, 0
        self.where: dict[int, list[int]] = defaultdict(list)

    def extend(self) -> None:
        where, context = self.where, self.context
        for at in range(self.length, len(context)):
            where[context[at]].append(at)
        self.length = len(context)


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

    def prepare(self, context: list[int]) -> None:
        self.ngram.prepare(context)

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
