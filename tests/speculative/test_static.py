"""The static KV cache computes what HF computes: the same logits for Llama and Qwen2 (GQA,
biases, rope scalings), after rollback and prefix reuse, padded to a bucket or not, through the
CUDA-graph sequence (emulated on the CPU); greedy decoding through it equals the target alone."""

import random

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from speculative.cache import PrefixKV
from speculative.decode import Decoder
from speculative.drafters import ModelDrafter, NextTokens, NgramDrafter, Tree
from speculative import static
from speculative.static import StaticKV, StaticModel, kv_cache, unsupported_reason

SMALL = dict(vocab_size=48, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
             max_position_embeddings=512)


def llama(seed=0, **overrides):
    torch.manual_seed(seed)
    config = LlamaConfig(**{**SMALL, "num_attention_heads": 4, "num_key_value_heads": 2,
                            **overrides})
    return LlamaForCausalLM(config).eval()


def qwen2(seed=0, **overrides):
    torch.manual_seed(seed)
    config = Qwen2Config(**{**SMALL, "num_attention_heads": 4, "num_key_value_heads": 1,
                            "tie_word_embeddings": False, "rope_theta": 1e6, **overrides})
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():  # HF starts biases at zero: make them count
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0, 0.5)
    return model


def sharp(model, scale=8.0):
    """Sharper random distributions: long, varied greedy outputs without near-ties."""
    with torch.no_grad():
        model.lm_head.weight.mul_(scale)
    return model


MODELS = {
    "llama-gqa": lambda: llama(),
    "llama-mha-biases": lambda: llama(num_key_value_heads=4, attention_bias=True, mlp_bias=True),
    "llama3-rope": lambda: llama(rope_parameters={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16, "rope_theta": 5e5}),
    "linear-rope": lambda: llama(rope_parameters={"rope_type": "linear", "factor": 2.0,
                                                  "rope_theta": 1e4}),
    "yarn-rope": lambda: qwen2(rope_parameters={"rope_type": "yarn", "factor": 4.0,
                                                "original_max_position_embeddings": 16,
                                                "rope_theta": 1e4}),
    "qwen2-gqa-untied": lambda: qwen2(),
    "qwen2-tied": lambda: qwen2(tie_word_embeddings=True, num_key_value_heads=2),
}
MODES = {
    "eager": dict(graphs=False),
    "stacked-mlp": dict(graphs=False, stack_mlp=True),
    "static-shapes": dict(graphs=False, static_shapes=True, buckets=(1, 2, 4, 8, 16, 64)),
    "emulated-graphs": dict(graphs="emulate", buckets=(1, 2, 4, 8, 16, 64), min_capacity=16),
}


def hf_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids], device=model.device)).logits[0]


def close(a, b):
    torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_logits_equal_hf(name):
    model = MODELS[name]()
    assert unsupported_reason(model) is None
    ids = random.Random(0).choices(range(48), k=150)  # past the chunk bucket (64)
    reference = hf_logits(model, ids)
    for mode in MODES.values():
        kv = StaticKV(StaticModel(model, **mode))
        close(kv.feed(ids[:100]), reference[:100])
        close(kv.feed(ids[100:103]), reference[100:103])  # padded to a bucket of 4
        close(kv.feed(ids[103:]), reference[103:])
        kv.rollback(20)
        close(kv.prefill(ids[:60])[0], reference[59])  # after rollback, reusing 20


def test_each_step_takes_its_attention_path_and_all_give_hf_logits(monkeypatch):
    """With matmul attention for up to 32 tokens, decode and verify steps take it; a prompt's
    first chunk of more attends causally within itself; a later chunk of more takes SDPA under
    the mask. Each bucket one path; all give HF's logits."""
    used = []
    for name in ("_matmul_attention", "_sdpa_attention", "_causal_attention"):
        def spy(*args, real=getattr(static, name), name=name):
            used.append(name)
            return real(*args)
        monkeypatch.setattr(static, name, spy)
    model = qwen2(seed=15, num_key_value_heads=2)
    ids = random.Random(2).choices(range(48), k=64 + 1 + 8 + 40)
    reference = hf_logits(model, ids)
    for mode in MODES.values():
        kv = StaticKV(StaticModel(model, **mode, matmul_attention_tokens=32))
        kv.feed(ids)  # emulated graphs: the capture (at the cache's final size) runs every bucket
        kv.rollback(0)
        for start, end, path in ((0, 64, "_causal_attention"), (64, 65, "_matmul_attention"),
                                 (65, 73, "_matmul_attention"), (73, 113, "_sdpa_attention")):
            used.clear()
            close(kv.feed(ids[start:end]), reference[start:end])
            assert set(used) == {path}


@pytest.mark.parametrize("mode", MODES)
def test_rollback_and_prefix_reuse_give_the_logits_of_a_fresh_prefill(mode):
    model = llama(seed=4)
    first = list(range(1, 40))
    second = first[:12] + [30, 31, 5, 6]
    kv = StaticKV(StaticModel(model, **MODES[mode]))
    kv.prefill(first)
    kv.feed([7, 8, 9])
    kv.rollback(len(first))
    reused_logits, reused = kv.prefill(second)
    fresh_logits, fresh_reused = StaticKV(StaticModel(model, **MODES[mode])).prefill(second)
    assert reused == 12 and fresh_reused == 0
    close(reused_logits, fresh_logits)
    close(fresh_logits, hf_logits(model, second)[-1])


def test_padded_verify_equals_unpadded():
    model = qwen2(seed=5)
    prompt = list(range(3, 30))
    eager = StaticKV(StaticModel(model, graphs=False))
    padded = StaticKV(StaticModel(model, **MODES["emulated-graphs"]))
    for kv in (eager, padded):
        kv.prefill(prompt)
    for draft in ([5], [5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8, 9], list(range(17))):
        close(padded.feed(draft), eager.feed(draft))  # buckets 1, 4, 16 and 2 x 16 + 1
        padded.rollback(len(prompt))
        eager.rollback(len(prompt))


@pytest.mark.parametrize("mode", ["eager", "static-shapes", "emulated-graphs", "hf-cache"])
def test_greedy_feeds_return_the_argmax_of_the_logits(mode):
    # a decode or verify step's graph computes the argmax; the prefill chunk, more than a
    # verify step's tokens and the HF cache take it from the logits
    model = sharp(qwen2(seed=7))
    ids = [random.Random(7).randrange(48) for _ in range(80)]
    reference = hf_logits(model, ids).argmax(-1).tolist()
    kv = PrefixKV(model) if mode == "hf-cache" else StaticKV(StaticModel(model, **MODES[mode]))
    for start, end in ((0, 10), (10, 11), (11, 14), (14, 30), (30, 63), (63, 64)):
        assert kv.feed_argmax(ids[start:end]) == reference[start:end]
    kv.rollback(40)  # after a rollback, a verify step over the rolled-back positions
    assert kv.feed_argmax(ids[40:56]) == reference[40:56]


def test_emulated_graphs_replay_into_one_output_and_logits_survive_the_next_step():
    model = llama(seed=6)
    engine = StaticModel(model, **MODES["emulated-graphs"])
    kv = StaticKV(engine)
    first = kv.feed([1, 2, 3])
    kept = first.clone()
    second = kv.feed([4, 5, 6])  # the same bucket (4): the same static output tensor
    step = engine.steps[(4, engine.capacity)]
    assert step.output.data_ptr() != first.data_ptr()  # what feed returned is a copy
    close(first, kept)
    close(second, hf_logits(model, [1, 2, 3, 4, 5, 6])[3:])


def test_a_growing_cache_keeps_its_tokens_through_each_new_capture():
    model = qwen2(seed=9)
    engine = StaticModel(model, graphs="emulate", buckets=(1, 2, 4), min_capacity=4)
    kv = StaticKV(engine)
    ids = random.Random(1).choices(range(48), k=40)
    reference = hf_logits(model, ids)
    close(kv.feed(ids[:6]), reference[:6])
    for i in range(6, 40):  # grows (and captures its steps again) at 8, 16, 32 and 64
        close(kv.feed([ids[i]]), reference[i:i + 1])
    assert engine.capacity == 64


def test_caches_sharing_a_model_restore_their_own_tokens():
    model = llama(seed=7)
    engine = StaticModel(model, graphs=False)
    a, b = StaticKV(engine), StaticKV(engine)
    a.prefill([1, 2, 3, 4])
    b.prefill([9, 9, 9, 9, 9, 9])
    close(a.feed([5]), hf_logits(model, [1, 2, 3, 4, 5])[-1:])
    logits, reused = b.prefill([9, 9, 9, 9, 9, 9, 8])
    assert reused == 0  # a wrote over b's cache in between
    close(logits, hf_logits(model, [9, 9, 9, 9, 9, 9, 8])[-1])


@pytest.mark.parametrize("stack_mlp", [False, True])
def test_weights_changed_in_place_are_picked_up(stack_mlp):
    model = llama(seed=8, mlp_bias=True)
    kv = StaticKV(StaticModel(model, graphs=False, stack_mlp=stack_mlp))
    kv.prefill([1, 2, 3])
    with torch.no_grad():  # the stacked q/k/v (and gate/up) copies follow; biases too
        model.model.layers[0].self_attn.k_proj.weight.mul_(1.5)
        model.model.layers[1].mlp.gate_proj.weight.mul_(1.5)
        model.model.layers[1].mlp.up_proj.bias.add_(0.5)
    logits, reused = kv.prefill([1, 2, 3, 4])
    close(logits, hf_logits(model, [1, 2, 3, 4])[-1])


def test_unsupported_models_fall_back_to_the_hf_cache(monkeypatch):
    sliding = qwen2(use_sliding_window=True, max_window_layers=0, sliding_window=8)
    dynamic = llama(rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4})
    for model in (sliding, dynamic):
        assert unsupported_reason(model)
        assert isinstance(kv_cache(model), PrefixKV)
    assert isinstance(kv_cache(llama()), StaticKV)
    monkeypatch.setenv("SPECULATIVE_STATIC", "0")
    assert isinstance(kv_cache(llama()), PrefixKV)


PROMPTS = [[1, 5, 9, 2, 7], [3, 3, 3, 4, 11, 12, 3, 3], [20, 21, 22, 23, 20, 21]]


@pytest.mark.parametrize("mode", ["eager", "emulated-graphs"])
def test_greedy_speculative_equals_plain_hf_decoding(mode):
    target = sharp(qwen2(seed=10, num_hidden_layers=2))
    draft = sharp(llama(seed=11, num_hidden_layers=1))
    engine = StaticModel(target, **MODES[mode])
    for prompt in PROMPTS:
        plain = Decoder(target, kv=PrefixKV(target)).generate(prompt, max_new_tokens=40,
                                                              stop_ids=set())
        static = Decoder(target, kv=StaticKV(engine))
        for drafter in (None, NgramDrafter(), ModelDrafter(draft)):
            fast = static.generate(prompt, max_new_tokens=40, stop_ids=set(), drafter=drafter)
            assert fast.tokens == plain.tokens
            assert drafter is None or fast.drafted > 0
        # the next call reuses the prompt and its completion
        again = static.generate(prompt + plain.tokens[:5], max_new_tokens=10, stop_ids=set())
        assert again.reused_prompt_tokens == len(prompt) + 4
        assert again.tokens == plain.tokens[5:15]


def test_greedy_model_drafts_stop_below_p_min():
    draft = llama(seed=12)  # near-uniform: every token's probability is far below 0.9
    assert len(ModelDrafter(draft, p_min=0.9).propose([1, 2, 3], 8).tokens) == 1
    assert len(ModelDrafter(draft, p_min=0.0).propose([1, 2, 3], 8).tokens) == 8


def test_a_wrapped_forward_sees_every_step():
    """Probes and wrappers of model.forward (tests, profilers) keep seeing the decoding."""
    model = sharp(llama(seed=13))
    decoder = Decoder(model, kv=StaticKV(StaticModel(model, graphs=False)))
    plain = decoder.generate(PROMPTS[0], max_new_tokens=12, stop_ids=set())
    calls, original = [], model.forward

    def probe(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    model.forward = probe
    try:
        watched = decoder.generate(PROMPTS[0], max_new_tokens=12, stop_ids=set(),
                                   drafter=NgramDrafter())
    finally:
        del model.forward
    assert watched.tokens == plain.tokens and len(calls) == watched.forwards
    again = decoder.generate(PROMPTS[0], max_new_tokens=12, stop_ids=set())
    assert again.tokens == plain.tokens and again.reused_prompt_tokens == len(PROMPTS[0]) - 1


def test_a_model_moved_or_cast_after_first_use_is_read_again():
    model = llama(seed=14)
    kv = StaticKV(StaticModel(model, graphs=False))
    kv.prefill([1, 2, 3])
    model.to(torch.float64)  # new storage: the engine rebuilds from the model
    logits, reused = kv.prefill([1, 2, 3, 4])
    assert reused == 0 and logits.dtype == torch.float64
    close(logits, hf_logits(model, [1, 2, 3, 4])[-1])


def test_compiled_decode_steps_give_the_logits_of_hf():
    """compile_steps: the decode/verify buckets run through torch.compile (inductor on this
    CPU) inside the emulated capture sequence; the prompt chunk stays as it was."""
    from torch._dynamo.utils import counters

    counters.clear()
    model = qwen2(seed=16, num_key_value_heads=2, num_hidden_layers=1)
    ids = random.Random(3).choices(range(48), k=40 + 3)
    reference = hf_logits(model, ids)
    engine = StaticModel(model, graphs="emulate", buckets=(1, 64), min_capacity=16,
                         compile_steps=True)
    kv = StaticKV(engine)
    close(kv.prefill(ids[:40])[0], reference[39])
    for i in range(40, 43):
        close(kv.feed(ids[i:i + 1])[-1], reference[i])
    assert counters["stats"]["unique_graphs"] >= 1  # compiled, not a silent fallback


def test_steps_captured_per_attended_length_give_the_logits_of_hf(monkeypatch):
    """attend_buckets: a step attends over the smallest captured length that holds its
    positions (8, 12, 16, 24, 32, 48, then the capacity here), not the whole cache."""
    monkeypatch.setattr(static, "ATTEND_MIN", 8)
    used = []
    real_key = StaticModel._step_key

    def spy(engine, bucket, at):
        used.append(real_key(engine, bucket, at))
        return used[-1]

    monkeypatch.setattr(StaticModel, "_step_key", spy)
    model = qwen2(seed=30, num_key_value_heads=2)
    ids = random.Random(3).choices(range(48), k=60)
    reference = hf_logits(model, ids)
    kv = StaticKV(StaticModel(model, **MODES["emulated-graphs"], attend_buckets=True))
    close(kv.feed(ids[:5]), reference[:5])
    for i in range(5, 40):  # decode steps across the attended lengths 8 ... 48
        close(kv.feed(ids[i:i + 1]), reference[i:i + 1])
    close(kv.feed(ids[40:48]), reference[40:48])  # a verify step
    kv.rollback(20)  # back below a boundary: the smaller length again
    close(kv.feed(ids[20:21]), reference[20:21])
    assert {a for b, a in used if b == 1} == {8, 12, 16, 24, 32, 48}
    assert (8, 48) in used  # the verify step of 8 tokens at positions 40-47
    assert used[-1] == (1, 24)


# --- trees of drafts ------------------------------------------------------------------------


class BranchingDrafter:
    """Trees whose first branch is wrong and whose second holds the target's own continuation
    (known from a plain run): every accepted path leaves the first branch, so its tokens go
    into the next forward again."""
    trees = True

    def __init__(self, prompt, truth, vocab):
        self.prompt, self.truth, self.vocab = prompt, truth, vocab
        self.budgets = []

    def propose_tree(self, context, k, budget):
        self.budgets.append(budget)
        done = len(context) - len(self.prompt)
        right = self.truth[done:done + min(k, 3)]
        tree = Tree()
        if right:
            tree.add([(right[0] + 1) % self.vocab] * 2, budget)
            tree.add(right, budget)
        return tree


@pytest.mark.parametrize("mode", ["static-shapes", "emulated-graphs"])
def test_greedy_trees_of_drafts_equal_plain_decoding(mode):
    """A tree's nodes at their depths' positions, each seeing only its ancestors: the greedy
    output is the target's, whether the accepted path is the first branch (n-gram trees) or
    leaves it (its tokens re-fed), and the next call still reuses the cached prefix."""
    target = sharp(qwen2(seed=12, num_hidden_layers=2))
    engine = StaticModel(target, **MODES[mode])
    table = NextTokens.count([[random.Random(i).randrange(48) for _ in range(60)]
                              for i in range(30)], min_count=1)
    for prompt in PROMPTS:
        plain = Decoder(target, kv=PrefixKV(target)).generate(prompt, max_new_tokens=40,
                                                              stop_ids=set())
        static = Decoder(target, kv=StaticKV(engine))
        branching = BranchingDrafter(prompt, plain.tokens, 48)
        for drafter in (NgramDrafter(next_tokens=table), branching):
            fast = static.generate(prompt, max_new_tokens=40, stop_ids=set(), drafter=drafter)
            assert fast.tokens == plain.tokens
        assert fast.forwards <= 12  # up to 3 drafts and the target's next token a round
        assert min(branching.budgets) < max(branching.budgets) == 15  # re-fed tokens take room
        again = static.generate(prompt + plain.tokens[:5], max_new_tokens=10, stop_ids=set())
        assert again.tokens == plain.tokens[5:15]


def test_a_tree_forward_gives_each_node_the_argmax_of_its_own_branch():
    model = sharp(llama(seed=13))
    prompt = [random.Random(13).randrange(48) for _ in range(20)]
    kv = StaticKV(StaticModel(model, **MODES["static-shapes"]))
    kv.prefill(prompt[:-1])  # the last prompt token is the tree's root
    tree = Tree()
    for branch in ([3, 4, 5], [3, 7], [9, 1, 2, 6]):
        tree.add(branch, budget=15)
    best = kv.feed_argmax([prompt[-1]] + tree.tokens, (tree.depths, tree.bits))
    parents = {child: key & 63 for key, child in tree.edges.items()}  # key: token << 6 | parent
    for node in range(len(tree.tokens) + 1):
        path, at = [], node
        while at:
            path.append(tree.tokens[at - 1])
            at = parents[at]
        assert best[node] == hf_logits(model, prompt + path[::-1])[-1].argmax()
    assert kv.tree_tokens == 16
    assert StaticKV(StaticModel(model, graphs=False)).tree_tokens == 0  # eager: rows only
