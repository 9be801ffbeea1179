"""Drafters propose the next few tokens cheaply; the target verifies them in one forward.

- `NgramDrafter`: prompt lookup over everything the target sees, the FIM prefix *and suffix*
  included (editing code repeats itself), the earlier occurrences voting on the continuation;
  its drafts carry no probabilities (q = 1).
- `ModelDrafter`: a small model with the same tokenizer, sampling with the target's settings,
  stopping early when its confidence drops below `p_min` (llama.cpp's draft-p-min).
- `CombinedDrafter`: the n-gram draft when one exists, else the model's.
- `AdaptiveLength`: the draft length follows the acceptance history.
- `NextTokens`: which tokens most often follow one or two tokens in a training corpus; with it
  the n-gram drafter's trees (`propose_tree`) also guess the next token where the prompt has no
  say.

`propose_tree(context, k, budget)` (the n-gram drafter, greedy decoding on a static-shape
verify step): a `Tree` of drafts, verified in one forward whose cost barely grows with its
tokens on a GPU: the vote's draft as its first branch, then the continuations of the heaviest
other candidates, then the corpus's likeliest next tokens, each a few tokens long. The decoder
accepts the longest branch the target agrees with.

`propose(context, k, ..., free_k=None)`: k bounds a draft that costs forwards; `free_k`, when
the caller gives it, bounds one that does not (an n-gram draft), which may then be longer. A
decoder passes the same context list at every round, grown in place by the tokens it accepted
(the n-gram index then extends rather than rescans), and may call `prepare(context)` first,
while the target's prefill runs.
"""

from __future__ import annotations

import heapq
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field

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


@dataclass
class Tree:
    """Drafts sharing prefixes, after the pending token (the root, node 0): node i (1-based)
    is tokens[i - 1]; children[node] maps a token to its node (a larger number). Per node,
    the root included: its depth, and its visibility bits (bit j: node j is the node itself or
    one of its ancestors), the inputs of the forward that verifies it (`StaticModel.forward`).
    The first branch (the vote's draft) is nodes 1, 2, ... in a row."""
    tokens: list[int] = field(default_factory=list)
    children: list[dict[int, int]] = field(default_factory=lambda: [{}])
    depths: list[int] = field(default_factory=lambda: [0])
    bits: list[int] = field(default_factory=lambda: [1])

    def add(self, path, budget: int) -> None:
        """Add a branch from the root, its tokens that are new while the tree has fewer than
        `budget` nodes."""
        node, children, depths, bits = 0, self.children, self.depths, self.bits
        for token in path:
            child = children[node].get(token)
            if child is None:
                child = len(children)
                if child > budget:
                    return
                self.tokens.append(token)
                children.append({})
                children[node][token] = child
                depths.append(depths[node] + 1)
                bits.append(bits[node] | 1 << child)
            node = child

    def walk(self, best: list[int]) -> list[int]:
        """The nodes the target accepts, given its argmax at every node (root first): from the
        root, the child holding the target's choice, while there is one."""
        path, node = [], 0
        while (node := self.children[node].get(best[node], -1)) >= 0:
            path.append(node)
        return path


class NextTokens:
    """The tokens that most often follow a pair of tokens, or else a single token, in a corpus
    (pairs and tokens seen fewer than `min_count` times are left out): a guess of the next
    token that costs a dict lookup. Made by `count`, kept in a safetensors file (`save`,
    `load`)."""

    def __init__(self, pairs: dict[tuple[int, int], tuple[int, ...]],
                 singles: dict[int, tuple[int, ...]]):
        self.pairs, self.singles = pairs, singles

    def after(self, before: int, last: int) -> tuple[int, ...]:
        """The likeliest next tokens after `before, last`, most likely first."""
        found = self.pairs.get((before, last))
        return found if found is not None else self.singles.get(last, ())

    def chain(self, before: int, last: int, length: int) -> list[int]:
        """Up to `length` tokens, each the likeliest after the two before it."""
        out = []
        for _ in range(length):
            following = self.after(before, last)
            if not following:
                break
            before, last = last, following[0]
            out.append(last)
        return out

    @classmethod
    def count(cls, sequences, top: int = 4, min_count: int = 30) -> "NextTokens":
        pairs: dict[tuple[int, int], Counter] = defaultdict(Counter)
        singles: dict[int, Counter] = defaultdict(Counter)
        for ids in sequences:
            for a, b, c in zip(ids, ids[1:], ids[2:]):
                pairs[a, b][c] += 1
            for b, c in zip(ids, ids[1:]):
                singles[b][c] += 1

        def keep(table):
            return {key: tuple(t for t, _ in counts.most_common(top))
                    for key, counts in table.items() if counts.total() >= min_count}
        return cls(keep(pairs), keep(singles))

    def save(self, path) -> None:
        from safetensors.torch import save_file
        top = max((len(v) for v in (*self.pairs.values(), *self.singles.values())), default=1)

        def rows(table):
            return torch.tensor([list(v) + [-1] * (top - len(v)) for v in table.values()],
                                dtype=torch.int32).reshape(-1, top)
        pair_keys = torch.tensor(list(self.pairs), dtype=torch.int32).reshape(-1, 2)
        save_file({"pair_keys": pair_keys, "pair_next": rows(self.pairs),
                   "single_keys": torch.tensor(list(self.singles), dtype=torch.int32),
                   "single_next": rows(self.singles)}, str(path),
                  metadata={"format": "next-tokens-1"})

    @classmethod
    def load(cls, path) -> "NextTokens":
        from safetensors import safe_open
        try:
            with safe_open(str(path), "pt") as f:
                if (f.metadata() or {}).get("format") != "next-tokens-1":
                    raise ValueError("not a next-token table")
                t = {name: f.get_tensor(name).tolist() for name in f.keys()}
        except Exception as exc:
            raise ValueError(f"cannot read the next-token table {path}: {exc}") from exc

        def entries(keys, rows):
            return {key: tuple(x for x in row if x >= 0) for key, row in zip(keys, rows)}
        return cls(entries(map(tuple, t["pair_keys"]), t["pair_next"]),
                   entries(t["single_keys"], t["single_next"]))


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
                 weak_free_k: int | None = WEAK_FREE_DRAFT, next_tokens: NextTokens | None = None,
                 tree_candidates: int = 2, candidate_length: int = 8, guesses: int = 4,
                 guess_length: int = 3, tree_nodes: int = 31, trees: bool = True):
        """trees: where the decoder verifies a tree of drafts (greedy, static shapes), propose
        one (`propose_tree`) rather than a single row; next_tokens, tree_candidates,
        candidate_length, guesses, guess_length: what the tree adds after the vote's draft;
        tree_nodes: the most drafts in a tree (the decoder may ask for fewer); measured in
        BENCHMARKS.md, twelfth session."""
        self.trees, self.tree_nodes = trees, tree_nodes
        self.max_ngram, self.min_ngram, self.candidates = max_ngram, min_ngram, candidates
        self.weak_free_k = weak_free_k
        self.next_tokens = next_tokens
        self.tree_candidates, self.candidate_length = tree_candidates, candidate_length
        self.guesses, self.guess_length = guesses, guess_length
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

    def propose_tree(self, context: list[int], k: int, budget: int) -> Tree:
        """A tree of at most `budget` drafts of at most k tokens each (greedy decoding): the
        vote's draft (as `propose` with free_k=k), the continuations of the `tree_candidates`
        heaviest candidates (`candidate_length` tokens), then the `guesses` likeliest next
        tokens of the corpus table, each followed by its likeliest `guess_length`."""
        tree, budget = Tree(), min(budget, self.tree_nodes)
        if k <= 0 or len(context) < 2:
            return tree
        starts, vote = self.lookup(context, k, self.weak_free_k)
        tree.add(vote, budget)
        length = min(k, self.candidate_length)
        for at in heapq.nlargest(self.tree_candidates, starts, key=starts.__getitem__):
            tree.add(context[at:at + length], budget)
        if self.next_tokens is not None:
            for guess in self._guesses(context[-2], context[-1]):
                tree.add(guess[:k], budget)
        return tree

    def _guesses(self, before: int, last: int) -> list[list[int]]:
        """The corpus's likeliest next tokens after `before, last`, each with its likeliest
        continuation: remembered, since code repeats its pairs of tokens (a round's host time
        is on a request's critical path)."""
        memo = self._local.__dict__.setdefault("guesses", {})
        found = memo.get((before, last))
        if found is None:
            if len(memo) >= 100_000:
                memo.clear()
            table = self.next_tokens
            found = memo[before, last] = [
                [guess, *table.chain(last, guess, self.guess_length)]
                for guess in table.after(before, last)[:self.guesses]]
        return found

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
