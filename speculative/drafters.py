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

The n-gram drafter's per-round work (the index of the context, the vote, the tree) runs in C,
`speculative/_ngram.c`, which the install builds where a C compiler is (`Index`); the same rules
in Python (`_Index`) run where it is not, or where a token id is past 2 ** 24. On an H200 host
the decoder's loop over the bench's requests took 27.7 us of host time a tree round with it
against 64.0 in Python, and the bench gained ~0.2x plain AR's tokens/s (BENCHMARKS.md,
thirteenth session).

`propose(context, k, ..., free_k=None)`: k bounds a draft that costs forwards; `free_k`, when
the caller gives it, bounds one that does not (an n-gram draft), which may then be longer. A
decoder passes the same context list at every round, grown in place by the tokens it accepted
(the n-gram index then extends rather than rescans), and may call `prepare(context)` first,
while the target's prefill runs.
"""

from __future__ import annotations

import threading
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from speculative.sampling import draw, probabilities
from speculative.static import chain_inputs, kv_cache

try:  # the C module of the drafter's per-round work, built on install where a compiler is
    from speculative import _ngram
    from speculative._ngram import Index
except ImportError:  # pragma: no cover - the Python rules instead (`_Index`)
    _ngram = Index = None


@dataclass
class Draft:
    tokens: list[int]
    q: torch.Tensor | None  # [len(tokens), V] draft distributions; None means q = 1
    # (greedy drafts carry none either: greedy acceptance compares tokens only)
    forwards: int = 0


NEXT_TOKENS_FORMAT = "next-tokens-2"

# A free draft (`free_k`) from a match of the last token alone stops here: with the pending
# token, an 8-token verify step, which on a GPU costs what a decode step does, where one of 16
# costs ~10% more; and such drafts are seldom accepted past 7 tokens (BENCHMARKS.md).
WEAK_FREE_DRAFT = 7


class Tree:
    """Drafts sharing prefixes, after the pending token (the root, node 0): node i (1-based)
    is tokens[i - 1]; edges maps token << 6 | node to the child of `node` holding `token` (a
    tree has at most 63 nodes, the bits of an int64). Per node, the root included: its depth,
    and its visibility bits (bit j: node j is the node itself or one of its ancestors), the
    inputs of the forward that verifies it (`StaticModel.forward`), kept as int64 arrays that
    go into the step's input buffer as they are. The first branch (the vote's draft) is nodes
    1, 2, ... in a row."""
    __slots__ = ("tokens", "edges", "depths", "bits")

    def __init__(self, tokens=None, edges=None, depths=None, bits=None):
        """An empty tree, or one of the given fields (as `_ngram.Index.tree` returns them)."""
        self.tokens: list[int] = tokens if tokens is not None else []
        self.edges: dict[int, int] = edges if edges is not None else {}
        self.depths: array = depths if depths is not None else array("q", [0])
        self.bits: array = bits if bits is not None else array("q", [1])

    def add(self, path, budget: int) -> None:
        """Add a branch from the root, its tokens that are new while the tree has fewer than
        `budget` nodes; a negative token (a table guess's padding) ends it."""
        node, edges, tokens, depths, bits = 0, self.edges, self.tokens, self.depths, self.bits
        for token in path:
            if token < 0:
                return
            key = token << 6 | node
            child = edges.get(key)
            if child is None:
                child = len(tokens) + 1
                if child > budget:
                    return
                edges[key] = child
                tokens.append(token)
                depths.append(depths[node] + 1)
                bits.append(bits[node] | 1 << child)
            node = child

    def inputs(self, before: int = 0) -> tuple[array, array]:
        """The depths and visibility bits of a verify step of `before` tokens in a row, which
        every node sees, then this tree (its root first)."""
        if not before:
            return self.depths, self.bits
        seen = (1 << before) - 1
        depths, bits = chain_inputs(before)
        depths.extend([depth + before for depth in self.depths])
        bits.extend([bit << before | seen for bit in self.bits])
        return depths, bits

    def walk(self, best: list[int]) -> list[int]:
        """The nodes the target accepts, given its argmax at every node (root first): from the
        root, the child holding the target's choice, while there is one."""
        path, node, edges = [], 0, self.edges
        while (node := edges.get(best[node] << 6 | node, -1)) >= 0:
            path.append(node)
        return path

    @staticmethod
    def in_row(path: list[int]) -> int:
        """How many of an accepted path's first nodes are the first branch's (nodes 1, 2, ...),
        which lie in a row after the root in the cache."""
        kept = 0
        while kept < len(path) and path[kept] == kept + 1:
            kept += 1
        return kept


class NextTokens:
    """For a pair of tokens, or else a single token, seen at least `min_count` times in a
    corpus: the `top` tokens that most often follow it, each with the tokens that most likely
    follow it in turn (`length` of them): a guess of the next tokens that costs a dict lookup.
    Made by `count`, kept in a safetensors file (`save`, `load`); the paths are rows of -1-padded
    arrays, a list made of a row only when a drafter asks for it."""

    def __init__(self, pair_keys: list[int], pair_paths: np.ndarray, single_keys: list[int],
                 single_paths: np.ndarray):
        """pair_keys: before << 32 | last; paths: [contexts, top, 1 + length], -1 padded."""
        self.pair_paths, self.single_paths = pair_paths, single_paths
        self.pairs = dict(zip(pair_keys, range(len(pair_keys))))
        self.singles = dict(zip(single_keys, range(len(single_keys))))
        self.largest = int(max((a.max() for a in (pair_paths, single_paths) if a.size),
                               default=-1))  # the largest token it can guess

    def guesses(self, before: int, last: int) -> list[list[int]]:
        """The likeliest next tokens after `before, last`, most likely first, each followed by
        its likeliest continuation (-1 pads a short one; a missing guess is all -1)."""
        row = self.pairs.get(before << 32 | last)
        if row is not None:
            return self.pair_paths[row].tolist()
        row = self.singles.get(last)
        return self.single_paths[row].tolist() if row is not None else []

    @classmethod
    def count(cls, sequences, *, min_count: int, top: int = 4, length: int = 3
              ) -> "NextTokens":
        pair_counts: dict[tuple[int, int], Counter] = defaultdict(Counter)
        single_counts: dict[int, Counter] = defaultdict(Counter)
        for ids in sequences:
            for a, b, c in zip(ids, ids[1:], ids[2:]):
                pair_counts[a, b][c] += 1
            for b, c in zip(ids, ids[1:]):
                single_counts[b][c] += 1

        def kept(counts):
            return {key: [t for t, _ in c.most_common(top)]
                    for key, c in counts.items() if c.total() >= min_count}
        pairs, singles = kept(pair_counts), kept(single_counts)

        def path(before: int, last: int) -> list[int]:
            """`last`, then up to `length` tokens, each the likeliest after the two before."""
            out = [last]
            while len(out) <= length:
                following = pairs.get((before, last)) or singles.get(last)
                if not following:
                    break
                before, last = last, following[0]
                out.append(last)
            return out + [-1] * (length + 1 - len(out))

        def paths(key_last, nexts):
            rows = [path(key_last, guess) for guess in nexts]
            return rows + [[-1] * (length + 1)] * (top - len(rows))
        largest = max((max(n) for n in (*pairs.values(), *singles.values())), default=0)
        dtype = np.int16 if largest < 2 ** 15 else np.int32  # half the bytes for a small vocabulary
        pair_paths = np.array([paths(b, n) for (_, b), n in pairs.items()], dtype=dtype)
        single_paths = np.array([paths(b, n) for b, n in singles.items()], dtype=dtype)
        shape = (-1, top, length + 1)
        return cls([a << 32 | b for a, b in pairs], pair_paths.reshape(shape), list(singles),
                   single_paths.reshape(shape))

    def save(self, path) -> None:
        from safetensors.numpy import save_file
        save_file({"pair_keys": np.array(list(self.pairs), dtype=np.int64),
                   "pair_paths": self.pair_paths,
                   "single_keys": np.array(list(self.singles), dtype=np.int64),
                   "single_paths": self.single_paths}, str(path),
                  metadata={"format": NEXT_TOKENS_FORMAT})

    @classmethod
    def load(cls, path) -> "NextTokens":
        from safetensors import safe_open
        try:
            with safe_open(str(path), "np") as f:
                if (f.metadata() or {}).get("format") != NEXT_TOKENS_FORMAT:
                    raise ValueError(f"not a next-token table of format {NEXT_TOKENS_FORMAT}")
                t = {name: f.get_tensor(name) for name in f.keys()}
            return cls(t["pair_keys"].tolist(), t["pair_paths"], t["single_keys"].tolist(),
                       t["single_paths"])
        except Exception as exc:
            raise ValueError(f"cannot read the next-token table {path}: {exc}") from exc


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
                 tree_nodes: int = 31, trees: bool = True,
                 native: bool | None = None):
        """trees: where the decoder verifies a tree of drafts (greedy, static shapes), propose
        one (`propose_tree`) rather than a single row; next_tokens, tree_candidates,
        candidate_length, guesses: what the tree adds after the vote's draft; tree_nodes: the
        most drafts in a tree (the decoder may ask for fewer); measured in BENCHMARKS.md,
        twelfth session. native: run the rules in C (`speculative._ngram`); None: where it is
        built and takes these settings (its MAX_NGRAM, MAX_CANDIDATES and MAX_NODES: 17, 1,024
        and 63)."""
        fits = _ngram is not None and 1 <= max_ngram <= _ngram.MAX_NGRAM \
            and 1 <= candidates <= _ngram.MAX_CANDIDATES and tree_nodes <= _ngram.MAX_NODES
        if native and not fits:
            raise ValueError("the C n-gram index is not built or does not take these settings")
        self.native = fits if native is None else native
        self.trees, self.tree_nodes = trees, tree_nodes
        self.max_ngram, self.min_ngram, self.candidates = max_ngram, min_ngram, candidates
        self.weak_free_k = weak_free_k
        self.next_tokens = next_tokens
        self.tree_candidates, self.candidate_length = tree_candidates, candidate_length
        self.guesses = guesses
        self._local = threading.local()  # each thread's index of its last context

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
        tokens of the corpus table, each followed by its likeliest continuation."""
        budget = min(budget, self.tree_nodes)
        if k <= 0 or len(context) < 2:
            return Tree()
        guesses = [] if self.next_tokens is None else \
            self.next_tokens.guesses(context[-2], context[-1])[:self.guesses]
        return Tree(*self._index_of(context).tree(
            k, budget, -1 if self.weak_free_k is None else self.weak_free_k, *self._rules(),
            self.tree_candidates, self.candidate_length, guesses))

    def lookup(self, context: list[int], k: int, weak_k: int | None = None
               ) -> tuple[dict[int, int], list[int]]:
        """({where a candidate's continuation starts: its weight}, the vote's draft of up to k
        tokens, or of up to weak_k where no candidate matches more than the last token); both
        empty where nothing matches."""
        return self._index_of(context).lookup(k, -1 if weak_k is None else weak_k,
                                              *self._rules())

    def _rules(self) -> tuple[int, int, int]:
        return self.max_ngram, self.min_ngram, self.candidates

    def _index_of(self, context: list[int]):
        """The index of `context` (`_ngram.Index` where built, else `_Index`): the same list
        object grown since the last call (a decoder appends the tokens it accepts) extends
        the index; another starts a new one. It is on every round's critical path: no rescan
        of the context."""
        index = getattr(self._local, "index", None)
        if index is None or index.context is not context or len(context) < index.length:
            index = self._local.index = (Index if self.native else _Index)(context)
        try:
            index.extend()
        except ValueError:  # ids the C index does not take (not below 2 ** 24): Python's
            index = self._local.index = _Index(context)
            index.extend()
        return index


class _Index:
    """The drafter's rules over a growing context, in Python: where each token occurs
    ({token: its positions, ascending}), the vote (`lookup`) and the tree (`tree`). The same
    as `_ngram.Index` (the C module this package builds where a C compiler is), which runs
    them 6x faster (a tree over a fresh index of a ~1,000-token prompt: 18 against 110 us on
    a 2-core CPU) on the decoder's critical path, and takes token ids below 2 ** 24 only (its
    index has a slot per id)."""

    def __init__(self, context: list[int]):
        self.context, self.length = context, 0
        self.where: dict[int, list[int]] = defaultdict(list)

    def extend(self) -> None:
        where, context = self.where, self.context
        for at in range(self.length, len(context)):
            where[context[at]].append(at)
        self.length = len(context)

    def lookup(self, k: int, weak_k: int, max_ngram: int, min_ngram: int, candidates: int
               ) -> tuple[dict[int, int], list[int]]:
        """`NgramDrafter.lookup` (weak_k < 0: none)."""
        for skip in (0, 1):  # skip = 1: the last token taken for a changed one
            starts = self._matches(skip, max_ngram, min_ngram, candidates)
            if starts:
                if weak_k >= 0 and max(starts.values()) < 8 ** 2:  # 8 ** match length
                    k = min(k, weak_k)
                return starts, vote(self.context, starts, k)
        return {}, []

    def _matches(self, skip: int, max_ngram: int, min_ngram: int, candidates: int
                 ) -> dict[int, int]:
        """{where the continuation starts: weight}, latest first, for the occurrences of
        context[-1 - skip] before it."""
        context = self.context
        end = len(context) - 1 - skip  # the matched tail is context[:end + 1]
        if end < 1:
            return {}
        starts = {}
        for at in reversed(self.where[context[end]]):
            if at >= end:  # the tail itself (and, skipping, the token after it)
                continue
            length = 1
            while (length < max_ngram and length <= at
                   and context[at - length] == context[end - length]):
                length += 1
            if length >= min_ngram:
                starts[at + 1 + skip] = 8 ** length
            if len(starts) == candidates:
                break
        return starts

    def tree(self, k: int, budget: int, weak_k: int, max_ngram: int, min_ngram: int,
             candidates: int, tree_candidates: int, candidate_length: int,
             guesses: list[list[int]]) -> tuple[list[int], dict[int, int], list[int], list[int]]:
        """`NgramDrafter.propose_tree`, as a `Tree`'s fields."""
        tree, context = Tree(), self.context
        starts, draft = self.lookup(k, weak_k, max_ngram, min_ngram, candidates)
        tree.add(draft, budget)
        length = min(k, candidate_length)
        for at in sorted(starts, key=starts.__getitem__, reverse=True)[:tree_candidates]:
            tree.add(context[at:at + length], budget)
        for guess in guesses:
            tree.add(guess if k >= len(guess) else guess[:k], budget)
        return tree.tokens, tree.edges, tree.depths, tree.bits


def vote(context: list[int], starts: dict[int, int], k: int) -> list[int]:
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
