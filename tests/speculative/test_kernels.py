"""The static path's Triton kernels (speculative.kernels): on a CPU under Triton's interpreter,
on a CUDA device compiled. Each against the torch computation it replaces, and the static
forward with them against HF's logits."""

import random

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")  # without CUDA, tests/conftest.py turns its interpreter on

from speculative import kernels  # noqa: E402
from speculative.cache import PrefixKV  # noqa: E402
from speculative.decode import Decoder  # noqa: E402
from speculative.drafters import NgramDrafter  # noqa: E402
from speculative.static import StaticBatch, StaticKV, StaticModel  # noqa: E402

from test_static import (PROMPTS, BranchingDrafter, close, hf_logits, llama, qwen2,  # noqa: E402
                         sharp)

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def on_device(model):
    return model.to(DEVICE)


def reference_attention(q, kv, positions, rows, attend):
    """Softmax attention of q [n, heads, dim] over each row's cache [rows, 2 * kv_heads, C,
    dim], keys at positions <= the query's and < attend; fp64."""
    n, heads, dim = q.shape
    kv_heads = kv.shape[1] // 2
    t, group = n // rows, heads // kv_heads
    out = torch.empty(n, heads, dim, dtype=torch.float64)
    for j in range(n):
        row, pos = j // t, int(positions[j])
        for head in range(heads):
            keys = kv[row, head // group, : min(pos + 1, attend)].double()
            values = kv[row, kv_heads + head // group, : min(pos + 1, attend)].double()
            probs = torch.softmax(keys @ q[j, head].double() * dim ** -0.5, 0)
            out[j, head] = probs @ values
    return out.reshape(n, heads * dim)


@pytest.mark.parametrize("rows,t,heads,kv_heads,dim,attend", [
    (1, 1, 6, 2, 64, 300),  # a decode step over 5 slices of the cache
    (1, 8, 4, 1, 24, 200),  # a verify step; a head size of no power of two
    (3, 2, 4, 2, 16, 90),  # a batch cache: rows at their own positions
    (1, 32, 12, 2, 32, 100),  # 32 tokens x 6 query heads: several blocks of query rows
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_attention_kernel_equals_softmax_attention_over_visible_keys(rows, t, heads, kv_heads,
                                                                     dim, attend, dtype):
    if dtype == torch.bfloat16 and DEVICE.type != "cuda":
        pytest.skip("the interpreter's bf16 dot is wrong (Triton 3.9)")
    gen = torch.Generator().manual_seed(rows * 100 + t)
    capacity = 512
    kv = torch.randn(rows, 2 * kv_heads, capacity, dim, generator=gen).to(dtype)
    kv[..., attend:, :] = 1e4  # past `attend`: never read
    n = rows * t
    q = torch.randn(n, heads, dim, generator=gen).to(dtype)
    starts = [int(s) for s in torch.randint(0, attend - t, (rows,), generator=gen)]
    positions = torch.tensor([s + i for s in starts for i in range(t)])
    layer_kv = kv[0] if rows == 1 else kv
    got = kernels.attend(q.to(DEVICE), layer_kv.to(DEVICE), positions.to(DEVICE), rows, attend,
                         dim ** -0.5)
    expected = reference_attention(q, kv, positions, rows, attend)
    tolerance = 1e-4 if dtype == torch.float32 else 3e-2  # bf16: probabilities rounded for V
    torch.testing.assert_close(got.cpu().double(), expected, atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("slots", [[3, 9, 10, 40, 41], [20, 21, 22, 23, 24]])
def test_rope_store_rotates_q_and_k_and_writes_k_and_v_at_their_slots(slots):
    """RoPE at each token's position, K/V into its slot: the same place for a row of tokens,
    not for a tree's nodes (positions by depth, slots in order)."""
    model = on_device(qwen2(seed=40, num_key_value_heads=2))
    torch_path = StaticModel(model, graphs=False, kernels=False)
    kernel_path = StaticModel(model, graphs=False, kernels=True)
    for engine in (torch_path, kernel_path):
        engine._ensure_capacity(64)
    n, heads = 5, torch_path.heads
    qkv = torch.randn(n, heads + 2 * torch_path.kv_heads, torch_path.head_dim, device=DEVICE)
    positions = torch.tensor([3, 9, 10, 40, 41], device=DEVICE)
    slots = torch.tensor(slots, device=DEVICE)
    expected_q = torch_path._rope_and_store(
        qkv, positions, slots, 1,
        torch_path._rope_rows(torch_path.cos, torch_path.sin, positions), torch_path.kv[0], None)
    got_q = kernel_path._rope_and_store(qkv, positions, slots, 1,
                                        (kernel_path.cos, kernel_path.sin), kernel_path.kv[0], None)
    close(got_q, expected_q)
    close(kernel_path.kv, torch_path.kv)  # the same slots written, the others untouched
    written = torch_path.kv[0].abs().sum((0, 2)).nonzero().flatten()
    assert written.tolist() == sorted(set(slots.tolist()))


def test_attention_kernel_sees_only_a_trees_ancestors_among_the_steps_tokens():
    """A tree of 6 tokens at slots 50..55 (parents: -, 0, 1, 0, 3, 1): each query attends to
    the cache before the step and to its ancestors and itself, as a masked softmax says."""
    gen = torch.Generator().manual_seed(3)
    heads, kv_heads, dim, attend = 4, 2, 16, 64
    parents = [-1, 0, 1, 0, 3, 1]
    bits = []
    for i, parent in enumerate(parents):
        bits.append((bits[parent] if parent >= 0 else 0) | 1 << i)
    kv = torch.randn(2 * kv_heads, 128, dim, generator=gen)
    q = torch.randn(len(parents), heads, dim, generator=gen)
    slots = torch.arange(50, 56)
    got = kernels.attend(q.to(DEVICE), kv.to(DEVICE), slots.to(DEVICE), 1, attend, dim ** -0.5,
                         torch.tensor(bits).to(DEVICE))
    for i in range(len(parents)):
        seen = list(range(50)) + [50 + j for j in range(len(parents)) if bits[i] >> j & 1]
        for head in range(heads):
            keys, values = kv[head // 2, seen].double(), kv[kv_heads + head // 2, seen].double()
            probs = torch.softmax(keys @ q[i, head].double() * dim ** -0.5, 0)
            torch.testing.assert_close(got[i, head * dim:(head + 1) * dim].cpu().double(),
                                       probs @ values, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("stacked", [False, True])
def test_silu_mul_equals_silu_times_up(stacked):
    gen = torch.Generator().manual_seed(1)
    both = torch.randn(3, 2 * 1500, generator=gen).to(DEVICE)  # 2 blocks of columns
    gate, up = both.split(1500, -1) if stacked else (both[:, :1500].contiguous(),
                                                    both[:, 1500:].contiguous())
    close(kernels.silu_mul(gate, up), F.silu(gate) * up)


KERNEL_MODES = {
    "eager": dict(graphs=False, kernels=True),
    "stacked-mlp": dict(graphs=False, kernels=True, stack_mlp=True),
    "emulated-graphs": dict(graphs="emulate", buckets=(1, 4, 64), min_capacity=16,
                            kernels=True),
}


KERNEL_MODELS = {
    "llama-gqa": lambda: llama(),
    "qwen2-biases-untied": lambda: qwen2(),
    "llama-mha-biases": lambda: llama(num_key_value_heads=4, attention_bias=True, mlp_bias=True),
}


@pytest.mark.parametrize("name,mode", [(name, mode) for name in KERNEL_MODELS for mode in
                                       ("eager", "stacked-mlp")] + [("qwen2-biases-untied",
                                                                     "emulated-graphs")])
def test_forward_with_kernels_gives_hf_logits(name, mode):
    model = on_device(KERNEL_MODELS[name]())
    ids = random.Random(0).choices(range(48), k=110)
    reference = hf_logits(model, ids)
    kv = StaticKV(StaticModel(model, **KERNEL_MODES[mode]))
    close(kv.feed(ids[:70]), reference[:70])  # a causal chunk, then the rest under the mask
    close(kv.feed(ids[70:73]), reference[70:73])  # a verify step (padded to 4 in buckets)
    for i in range(73, 76):
        close(kv.feed(ids[i:i + 1]), reference[i:i + 1])  # decode steps
    close(kv.feed(ids[76:]), reference[76:])
    kv.rollback(20)
    close(kv.prefill(ids[:60])[0], reference[59])  # after rollback, reusing 20


def test_steps_of_few_tokens_attend_by_the_kernel(monkeypatch):
    model = on_device(qwen2(seed=15, num_key_value_heads=2))
    kv = StaticKV(StaticModel(model, graphs=False, kernels=True, matmul_attention_tokens=8))
    calls = []
    real = kernels.attend
    monkeypatch.setattr(kernels, "attend", lambda q, *a: calls.append(q.shape[0]) or real(q, *a))
    kv.feed(list(range(40)))  # a causal chunk: not the kernel
    kv.feed(list(range(8)))  # 8 tokens: the kernel, once per layer
    kv.feed(list(range(9)))  # 9: SDPA under the mask
    assert calls == [8] * model.config.num_hidden_layers


def test_greedy_speculative_with_kernels_equals_plain_hf_decoding():
    target = on_device(sharp(qwen2(seed=10, num_hidden_layers=2)))
    static = Decoder(target, kv=StaticKV(StaticModel(target, graphs=False, kernels=True)))
    for prompt in PROMPTS:
        plain = Decoder(target, kv=PrefixKV(target)).generate(prompt, max_new_tokens=20,
                                                              stop_ids=set())
        for drafter in (None, NgramDrafter()):
            fast = static.generate(prompt, max_new_tokens=20, stop_ids=set(), drafter=drafter)
        assert fast.tokens == plain.tokens


def test_batch_rows_with_kernels_give_the_logits_of_hf_alone(monkeypatch):
    monkeypatch.setattr(StaticBatch, "PREFILL_TOKENS", 16)  # chunks of 5 tokens over 3 rows
    model = on_device(qwen2(seed=22))
    for mode in (dict(graphs=False), dict(graphs="emulate")):
        cache = StaticModel(model, kernels=True, **mode).rows()
        rng = random.Random(1)
        rows = [rng.choices(range(1, 48), k=rng.randint(3, 30)) for _ in range(3)]
        for row, logits in zip(rows, cache.start(rows, room=3)):
            close(logits, hf_logits(model, row)[-1])
        for token in (5, 6):
            rows = [row + [token] for row in rows]
            for row, logits in zip(rows, cache.step([token] * 3)):
                close(logits, hf_logits(model, row)[-1])


def test_kernels_on_a_cpu_need_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="CUDA device"):
        StaticModel(qwen2(), graphs=False, kernels=True)
    assert StaticModel(qwen2(), graphs=False).kernels is None  # not by default on a CPU


def test_kernels_that_fail_give_way_to_the_torch_forward(monkeypatch):
    """Kernels Triton cannot compile (a GPU or driver it does not support) fail when the
    engine is built, which then runs the torch forward; a failure at a step's capture turns
    them off and captures again. Single cache and batch cache alike."""
    def broken(*args, **kwargs):
        raise RuntimeError("no kernel image for this device")

    model = on_device(qwen2(seed=41))
    ids = random.Random(4).choices(range(48), k=20)
    reference = hf_logits(model, ids)
    emulated = dict(graphs="emulate", buckets=(1, 4, 64), min_capacity=16)
    monkeypatch.setattr(kernels, "silu_mul", broken)  # at build time
    with pytest.raises(ValueError, match="no kernel image"):
        StaticModel(model, **emulated, kernels=True)  # asked for: an error
    engine = StaticModel(model, **emulated, kernels=None)
    if DEVICE.type == "cuda":  # on a CPU the default is off anyway
        assert engine.kernels is None
    close(StaticKV(engine).feed(ids), reference)
    monkeypatch.undo()
    engine = StaticModel(model, **emulated, kernels=True)
    monkeypatch.setattr(kernels, "rope_store", broken)  # at the first capture
    close(StaticKV(engine).feed(ids), reference)
    assert engine.kernels is None
    monkeypatch.undo()
    batch = StaticModel(model, graphs="emulate", kernels=True).rows()
    batch.start([ids[:10], ids[:5]], room=1)
    monkeypatch.setattr(kernels, "attend", broken)  # at the batch step's capture
    close(batch.step([ids[10], ids[5]])[0], reference[10])
    assert batch.engine.kernels is None and batch.graphs == "emulate"


def test_greedy_trees_of_drafts_with_the_kernels_equal_plain_decoding():
    """The kernels' tree rules (RoPE at a node's depth, K/V at its slot, its ancestors' keys
    only) under emulated graphs: n-gram trees and trees whose accepted path is re-fed."""
    model = on_device(sharp(qwen2(seed=44, num_hidden_layers=2)))
    engine = StaticModel(model, graphs="emulate", buckets=(1, 4, 16, 64), min_capacity=16,
                         kernels=True)
    prompt = PROMPTS[1]
    plain = Decoder(model, kv=PrefixKV(model)).generate(prompt, max_new_tokens=16, stop_ids=set())
    for drafter in (NgramDrafter(), BranchingDrafter(prompt, plain.tokens, 48)):
        fast = Decoder(model, kv=StaticKV(engine)).generate(
            prompt, max_new_tokens=16, stop_ids=set(), drafter=drafter)
        assert fast.tokens == plain.tokens
