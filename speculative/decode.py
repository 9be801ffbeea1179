"""Autoregressive decoding with optional speculation, over a prefix-reusing KV cache.

A decoding library: it takes a model, token ids, a drafter and stop conditions, and knows
nothing of editors or files. `stop_rule` lets the caller end decoding on text-level conditions
(a newline in single-line mode, running into the suffix).

Each round feeds the pending token and the draft to the target in one forward, accepts a prefix
of the draft by the exact rule (`sampling.accept_drafts`) and rolls the cache back to what was
accepted. Without a drafter a round is one plain decoding step, so plain and speculative
decoding share every line but the draft.

The cache is `static.StaticKV` where the model allows it (Llama/Qwen2: a preallocated cache,
a hand-written forward, CUDA graphs on a GPU), else `cache.PrefixKV` over HF's own forward.
Greedy rounds bring only the target's argmax ids to the host (`feed_argmax`; a decode or
verify step's CUDA graph computes them): one synchronisation per round. The drafter sees one
context list, grown in place by the tokens taken (its n-gram index extends rather than
rescans), and indexes the prompt while the GPU runs the prefill (`prepare`).
Where the verify step has static shapes (CUDA graphs), verifying 16 tokens costs about what one
does, so drafts that cost no forward (n-gram lookup) are proposed at up to `FREE_DRAFT` tokens
(the n-gram drafter stops one from a one-token match at 7: an 8-token step) and only model
drafts follow the adaptive length. Greedy rounds there verify a tree of such drafts
(`NgramDrafter.propose_tree`, up to the largest verify step, 32 tokens) and take its longest
branch the target agrees with: on an H200, 2.87 tokens per forward against 2.27 for one row,
1.97-2.19x plain AR's median tokens/s (median 2.09x over 13 runs) against 1.71-1.80x
(BENCHMARKS.md, thirteenth session).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from speculative.cancel import Cancelled  # noqa: F401  (re-exported)
from speculative.drafters import AdaptiveLength, Draft, Tree
from speculative.sampling import accept_drafts, accept_greedy, draw, probabilities
from speculative.static import LOGIT_BUCKETS, StaticKV, kv_cache

FREE_DRAFT = LOGIT_BUCKETS[-2] - 1  # 15 drafts + the pending token: one 16-token bucket


@dataclass
class DecodeResult:
    tokens: list[int]
    forwards: int  # target forwards, the prefill included
    stopped_by: str  # "stop_token", "stop_rule", "max_tokens"
    drafted: int = 0
    accepted: int = 0
    draft_forwards: int = 0
    reused_prompt_tokens: int = 0
    accepted_per_round: list[int] = field(default_factory=list)

    @property
    def acceptance(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0


class Decoder:
    """Owns the target's KV cache, so consecutive calls reuse the shared prompt prefix."""

    def __init__(self, model, kv=None):
        """kv: a cache to use instead of the model's default (`static.kv_cache(model)`)."""
        self.kv = kv if kv is not None else kv_cache(model)
        self.wide_verify = isinstance(self.kv, StaticKV) and self.kv.engine.static_shapes

    @torch.inference_mode()
    def generate(self, prompt_ids: list[int], *, max_new_tokens: int, stop_ids: set[int],
                 drafter=None, draft_length=None, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int | None = None, stop_rule: Callable[[list[int]], bool] | None = None,
                 is_cancelled: Callable[[], bool] | None = None) -> DecodeResult:
        greedy = temperature <= 0
        generator = torch.Generator().manual_seed(seed if seed is not None else 0)
        lengths = draft_length or AdaptiveLength()
        if is_cancelled and is_cancelled():
            raise Cancelled()
        logits, reused = self.kv.prefill(prompt_ids)
        context = list(prompt_ids)  # and the tokens taken: what the drafter sees, grown in place
        if drafter is not None and hasattr(drafter, "prepare"):
            drafter.prepare(context)  # while the GPU runs the prefill
        if greedy:
            pending = int(logits.argmax())
        else:
            pending = draw(probabilities(logits, temperature, top_p), generator)
        result = DecodeResult([], 1, "max_tokens", reused_prompt_tokens=reused)

        def take(token: int) -> bool:
            """Append an accepted token; True when decoding must stop here."""
            if token in stop_ids:
                result.stopped_by = "stop_token"
                return True
            result.tokens.append(token)
            context.append(token)
            if stop_rule and stop_rule(result.tokens):
                result.stopped_by = "stop_rule"
                return True
            return len(result.tokens) >= max_new_tokens

        tree_tokens = getattr(self.kv, "tree_tokens", 0)
        trees = greedy and self.wide_verify and getattr(drafter, "trees", False) and tree_tokens > 1
        refeed: list[int] = []  # tokens taken whose K/V a tree round left out of the cache
        while True:
            if take(pending):
                return result
            if is_cancelled and is_cancelled():
                raise Cancelled()
            room = max_new_tokens - len(result.tokens)
            result.forwards += 1
            if trees:
                tree = drafter.propose_tree(context, min(FREE_DRAFT, room),
                                            tree_tokens - 1 - len(refeed))
                accepted, kept, pending = self._verify_tree(refeed, pending, tree)
                result.drafted += len(tree.tokens)
                draft_forwards = 0
            else:
                draft = Draft([], None)
                if drafter is not None:
                    extra = {"free_k": min(FREE_DRAFT, room)} if self.wide_verify else {}
                    draft = drafter.propose(context, min(lengths.k, room),
                                            temperature, top_p, generator, **extra)
                if greedy:  # only the argmax ids come back from the device
                    n, pending = accept_greedy(self.kv.feed_argmax([pending] + draft.tokens),
                                               draft.tokens)
                else:
                    logits = self.kv.feed([pending] + draft.tokens)
                    p = probabilities(logits, temperature, top_p)
                    n, pending = accept_drafts(p, draft.tokens, draft.q, generator, greedy)
                accepted, kept = draft.tokens[:n], n
                if drafter is not None and (draft.forwards or not self.wide_verify):
                    lengths.update(len(draft.tokens), n)
                result.drafted += len(draft.tokens)
                draft_forwards = draft.forwards
            self.kv.rollback(len(prompt_ids) + len(result.tokens) + kept)
            refeed = accepted[kept:]
            if drafter is not None:
                result.accepted += len(accepted)
                result.draft_forwards += draft_forwards
                result.accepted_per_round.append(len(accepted))
            if any(take(token) for token in accepted):
                return result

    def _verify_tree(self, refeed: list[int], pending: int, tree: Tree
                     ) -> tuple[list[int], int, int]:
        """One greedy forward over the tokens to re-feed, the pending token and a tree of
        drafts after it: (the drafts accepted, how many of them lie in a row after the pending
        token in the cache (the first branch's), the target's next token).

        The cache keeps the first branch's slots only: an accepted path that leaves it is
        taken all the same, and its tokens past the branch go into the next round's forward
        again (`refeed`), which the verify step (`tree_tokens`) holds at little extra cost."""
        r = len(refeed)  # the tokens to re-feed go first, in a row; every node sees them
        best = self.kv.feed_argmax(refeed + [pending] + tree.tokens, tree.inputs(r))[r:]
        path = tree.walk(best)
        return ([tree.tokens[node - 1] for node in path], Tree.in_row(path),
                best[path[-1] if path else 0])
