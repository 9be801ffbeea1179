"""Speculative decoding is exact: greedy output equals the target alone, sampled output has the
target's distribution; the cache rolls back and reuses prefixes without changing logits."""

import math
import random
from collections import Counter

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from speculative.cache import PrefixKV
from speculative.decode import Cancelled, Decoder
from speculative.drafters import (AdaptiveLength, CombinedDrafter, FixedLength, ModelDrafter,
                                  NgramDrafter)
from speculative.sampling import accept_drafts, probabilities


def tiny_model(vocab: int, seed: int, layers: int = 2, scale: float = 1.0):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=256)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # sharper random distributions make long, varied greedy outputs
        model.lm_head.weight.mul_(scale)
    return model


def chi2_critical(df: int, z: float = 3.09) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile (z = 3.09: alpha = 0.001)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def chi2(observed: Counter, expected: dict, n: int) -> tuple[float, int]:
    stat, df, pooled_obs, pooled_exp = 0.0, -1, 0, 0.0
    for key, prob in expected.items():
        e = prob * n
        if e < 5:
            pooled_obs += observed.get(key, 0)
            pooled_exp += e
            continue
        stat += (observed.get(key, 0) - e) ** 2 / e
        df += 1
    if pooled_exp > 0:
        stat += (pooled_obs - pooled_exp) ** 2 / max(pooled_exp, 1e-9)
        df += 1
    return stat, df


PROMPTS = [[1, 5, 9, 2, 7], [3, 3, 3, 4, 11, 12, 3, 3], [20, 21, 22, 23, 20, 21]]


@pytest.mark.parametrize("make_drafter", [
    lambda draft: NgramDrafter(),
    lambda draft: ModelDrafter(draft),
    lambda draft: CombinedDrafter(NgramDrafter(), ModelDrafter(draft)),
])
def test_greedy_output_equals_the_target_alone(make_drafter):
    target, draft = tiny_model(32, 0, scale=8.0), tiny_model(32, 1, layers=1, scale=8.0)
    for prompt in PROMPTS:
        plain = Decoder(target).generate(prompt, max_new_tokens=24, stop_ids=set())
        fast = Decoder(target).generate(prompt, max_new_tokens=24, stop_ids=set(),
                                        drafter=make_drafter(draft))
        assert fast.tokens == plain.tokens
        assert fast.drafted > 0


def test_acceptance_rule_keeps_the_target_distribution():
    """First token from (draft ~ q, accept/reject) is distributed as p, for a draft model's q
    and for a draft without probabilities (n-gram, q = 1)."""
    torch.manual_seed(0)
    vocab, n = 6, 20000
    p = torch.softmax(torch.randn(2, vocab) * 1.5, -1)
    q = torch.softmax(torch.randn(1, vocab) * 1.5, -1)
    generator = torch.Generator().manual_seed(1)
    expected = {t: float(p[0, t]) for t in range(vocab)}
    for drafts_with_q in (True, False):
        counts = Counter()
        for _ in range(n):
            if drafts_with_q:
                token = int(torch.multinomial(q[0], 1, generator=generator))
                accepted, nxt = accept_drafts(p, [token], q, generator, greedy=False)
            else:
                token = 2  # an n-gram draft is a fixed guess
                accepted, nxt = accept_drafts(p, [token], None, generator, greedy=False)
            counts[token if accepted else nxt] += 1
        stat, df = chi2(counts, expected, n)
        assert stat < chi2_critical(df), (drafts_with_q, stat, df)


@pytest.mark.parametrize("drafter_kind", ["model", "ngram"])
def test_sampled_sequences_follow_the_target_distribution(drafter_kind):
    """Two sampled tokens, speculative vs the exact target distribution p(a) p(b | a)."""
    vocab = 5
    target, draft = tiny_model(vocab, 2, layers=1, scale=3.0), tiny_model(vocab, 3, layers=1, scale=3.0)
    prompt = [1, 2, 1, 2, 1]
    with torch.no_grad():
        first = probabilities(target(torch.tensor([prompt])).logits[0, -1], 1.0)
        expected = {}
        for a in range(vocab):
            second = probabilities(target(torch.tensor([prompt + [a]])).logits[0, -1], 1.0)
            for b in range(vocab):
                expected[(a, b)] = float(first[a] * second[b])
    decoder = Decoder(target)
    drafter = ModelDrafter(draft) if drafter_kind == "model" else NgramDrafter()
    counts, n = Counter(), 1500
    for seed in range(n):
        result = decoder.generate(prompt, max_new_tokens=2, stop_ids=set(), drafter=drafter,
                                  draft_length=FixedLength(3), temperature=1.0, seed=seed)
        counts[tuple(result.tokens)] += 1
    stat, df = chi2(counts, expected, n)
    assert stat < chi2_critical(df), (stat, df)


def test_rollback_and_prefix_reuse_give_the_logits_of_a_fresh_prefill():
    model = tiny_model(32, 4)
    first = list(range(1, 20))
    second = first[:12] + [30, 31, 5, 6]
    kv = PrefixKV(model)
    kv.prefill(first)
    kv.feed([7, 8, 9])
    kv.rollback(len(first))
    reused_logits, reused = kv.prefill(second)
    fresh_logits, fresh_reused = PrefixKV(model).prefill(second)
    assert reused == 12 and fresh_reused == 0
    torch.testing.assert_close(reused_logits, fresh_logits, atol=1e-5, rtol=1e-4)


def test_cancellation_stops_within_one_round():
    model = tiny_model(32, 5)
    rounds = []

    def is_cancelled():
        rounds.append(1)
        return len(rounds) > 3

    with pytest.raises(Cancelled):
        Decoder(model).generate(PROMPTS[0], max_new_tokens=50, stop_ids=set(),
                                drafter=NgramDrafter(), is_cancelled=is_cancelled)
    assert len(rounds) == 4


def test_stop_tokens_never_reach_the_output():
    model = tiny_model(8, 6, scale=0.1)  # nearly uniform: stop tokens come up quickly
    stops = {0, 1}
    for seed in range(20):
        result = Decoder(model).generate([2, 3, 4], max_new_tokens=30, stop_ids=stops,
                                         drafter=NgramDrafter(), temperature=1.0, seed=seed)
        assert not stops & set(result.tokens)


def test_ngram_drafter_looks_up_the_suffix_too():
    # the tokens after the cursor (here 40 41 42 43) are in the FIM prompt: a draft can come
    # from there
    context = [9, 40, 41, 42, 43, 9, 5, 40, 41]
    assert NgramDrafter().propose(context, 2).tokens == [42, 43]
    assert NgramDrafter().propose([1, 2, 3], 4).tokens == []


def test_adaptive_length_follows_acceptance():
    k = AdaptiveLength(start=4, maximum=8)
    k.update(4, 4)
    assert k.k == 6
    k.update(6, 1)
    assert k.k == 2


def test_the_nucleus_is_the_smallest_set_of_likeliest_tokens_reaching_top_p():
    from speculative.sampling import nucleus, probabilities

    logits = torch.log(torch.tensor([0.05, 0.5, 0.15, 0.3]))
    kept = lambda top_p: (nucleus(logits, top_p) > float("-inf")).tolist()
    assert kept(0.5) == [False, True, False, False]
    assert kept(0.8) == [False, True, False, True]  # 0.5 + 0.3 reaches 0.8
    assert kept(0.81) == [False, True, True, True]
    assert kept(1.0) == [True] * 4
    torch.testing.assert_close(probabilities(logits, 1.0, 0.8),
                               torch.tensor([0.0, 0.5 / 0.8, 0.0, 0.3 / 0.8]))
