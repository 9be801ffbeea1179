"""Triton kernels for the static path's decode and verify steps (`StaticModel(kernels=...)`).

A decode step of a 1.5B Qwen2 on an H200 ran ~20 kernels per layer, most of them a few
microseconds of launch-bound work (BENCHMARKS.md, the step profile): the GEMMs were half of the
step, attention (fp32 copies of q and K, q @ K^T, the mask, softmax, probs @ V, a permute copy)
about a quarter, RoPE and the cache write (a multiply, a cat, an addcmul, an index copy) and SiLU
times up most of the rest. These kernels do each group in one launch:

- `rope_store`: RoPE on the q and k heads of the stacked q/k/v output, q into a buffer, k and v
  straight into the cache at each token's slot (its position, except in a tree of drafts);
- `attend`: attention of a few query tokens over the cache, split over the keys (flash-decoding:
  the programs of one KV head each take a slice of the cache, one more kernel combines their
  softmax partials), the query heads of a KV head read its keys once, the visibility rule (a key
  is visible to a query when its position is <= the query's) computed in the kernel rather than
  read from a mask, slices past the last query's position skipped; the output comes out in the
  [tokens, heads * dim] layout o_proj reads. For a tree of drafts (`tree`), each query also
  carries a bitmask of the step's own tokens it may see (its ancestors and itself);
- `silu_mul`: SiLU(gate) * up.

The products take q, K and V in the model's dtype with fp32 accumulation (tensor cores for bf16;
fp32 models multiply exactly, "ieee"), the softmax is fp32, and the probabilities meet V in the
model's dtype, as in the matmul attention they replace and in SDPA's kernels. (fp32 dots in
the loop, for a bf16 model, made a 1.5B decode step's attention 63 us per layer on an H200:
register-starved FMA loops.) On a CPU they run under Triton's interpreter
(`TRITON_INTERPRET=1`), which is how the tests check them (fp32 models: the interpreter's bf16
dot is wrong in Triton 3.9).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_N = 64  # keys per iteration of a program's loop
MAX_SPLITS = 64  # slices of the cache per KV head: the combine kernel reads them at once
# Query rows (token x query head pairs of one KV head) per program, whatever the step's size:
# a row then takes the same instructions in a decode step as in a verify step, so that a token
# verified gets the logits it would get decoded (with 16 or 64 rows as the step needed, the
# greedy output of 1 request in 80 differed from plain decoding on an H200).
QUERY_ROWS = 16


@triton.jit
def _rope_store_kernel(qkv_ptr, cos_ptr, sin_ptr, pos_ptr, slot_ptr, q_ptr, kv_ptr, t,
                       kv_row_stride, kv_head_stride, kv_pos_stride,
                       HEADS: tl.constexpr, KV_HEADS: tl.constexpr, DIM: tl.constexpr,
                       BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr):
    token = tl.program_id(0)  # all its heads: q, then k, then v
    h = tl.arange(0, BLOCK_H)[:, None]
    d = tl.arange(0, BLOCK_D)[None, :]
    inside = (h < HEADS + 2 * KV_HEADS) & (d < DIM)
    pos = tl.load(pos_ptr + token)
    src = qkv_ptr + (token * (HEADS + 2 * KV_HEADS) + h) * DIM
    x = tl.load(src + d, mask=inside, other=0.0).to(tl.float32)
    # q and k rotate, v stays; `sin` is sign-folded (see StaticModel._rope_tables)
    partner = tl.load(src + (d + DIM // 2) % DIM, mask=inside, other=0.0).to(tl.float32)
    cos = tl.load(cos_ptr + pos * DIM + d, mask=d < DIM, other=0.0).to(tl.float32)
    sin = tl.load(sin_ptr + pos * DIM + d, mask=d < DIM, other=0.0).to(tl.float32)
    x = tl.where(h < HEADS + KV_HEADS, x * cos + partner * sin, x)
    tl.store(q_ptr + (token * HEADS + h) * DIM + d, x.to(q_ptr.dtype.element_ty),
             mask=inside & (h < HEADS))
    row = token // t
    slot = tl.load(slot_ptr + token)
    dst = kv_ptr + row * kv_row_stride + (h - HEADS) * kv_head_stride + slot * kv_pos_stride
    tl.store(dst + d, x.to(kv_ptr.dtype.element_ty), mask=inside & (h >= HEADS))


@triton.jit
def _attend_kernel(q_ptr, kv_ptr, pos_ptr, tree_ptr, part_ptr, max_ptr, sum_ptr, t, attend, split,
                   scale, kv_row_stride, kv_head_stride, kv_pos_stride, padded_rows,
                   HEADS: tl.constexpr, KV_HEADS: tl.constexpr, DIM: tl.constexpr,
                   BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                   TREE: tl.constexpr):
    row_head = tl.program_id(0)  # row * KV_HEADS + KV head
    block = tl.program_id(1)  # a block of this KV head's query rows: (token, query head) pairs
    piece = tl.program_id(2)  # the slice of the cache
    group = HEADS // KV_HEADS
    row, kv_head = row_head // KV_HEADS, row_head % KV_HEADS
    m = block * BLOCK_M + tl.arange(0, BLOCK_M)
    valid = m < t * group
    token = row * t + m // group
    head = kv_head * group + m % group
    d = tl.arange(0, BLOCK_D)
    inside = d < DIM
    q_pos = tl.load(pos_ptr + token, mask=valid, other=-1)  # the query's cache slot
    # with TREE, which of the step's own keys each query sees: its ancestors' bits and its own
    # (without, tree_ptr is pos_ptr and these go unused)
    seen = tl.load(tree_ptr + token, mask=valid, other=0).to(tl.int64)
    base = tl.load(pos_ptr + row * t)  # the step's first slot
    q = tl.load(q_ptr + (token * HEADS + head)[:, None] * DIM + d[None, :],
                mask=valid[:, None] & inside[None, :], other=0.0)
    lo = piece * split
    hi = tl.minimum(tl.minimum(lo + split, attend), tl.max(q_pos, 0) + 1)
    keys = kv_ptr + row * kv_row_stride + kv_head * kv_head_stride
    values = keys + KV_HEADS * kv_head_stride
    best = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    total = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    for start in range(lo, hi, BLOCK_N):
        n = start + tl.arange(0, BLOCK_N)
        load_mask = (n < hi)[:, None] & inside[None, :]
        offsets = n[:, None] * kv_pos_stride + d[None, :]
        k = tl.load(keys + offsets, mask=load_mask, other=0.0)
        scores = tl.dot(q, tl.trans(k), input_precision="ieee") * scale
        visible = (n[None, :] <= q_pos[:, None]) & (n < hi)[None, :]
        if TREE:
            own = n - base  # the key's index in the step; below 0: an earlier token's
            bit = (seen[:, None] >> tl.maximum(own, 0).to(tl.int64)[None, :]) & 1
            visible = visible & ((own < 0)[None, :] | (bit != 0))
        scores = tl.where(visible, scores, float("-inf"))
        new_best = tl.maximum(best, tl.max(scores, 1))
        shift = tl.where(new_best == float("-inf"), 0.0, new_best)  # no key seen yet
        p = tl.exp(scores - shift[:, None])
        decay = tl.exp(best - shift)
        total = total * decay + tl.sum(p, 1)
        v = tl.load(values + offsets, mask=load_mask, other=0.0)
        acc = acc * decay[:, None] + tl.dot(p.to(v.dtype), v, input_precision="ieee")
        best = new_best
    at = (row_head * tl.num_programs(2) + piece) * padded_rows + m
    tl.store(max_ptr + at, best)
    tl.store(sum_ptr + at, total)
    tl.store(part_ptr + at[:, None] * BLOCK_D + d[None, :], acc)


@triton.jit
def _combine_kernel(part_ptr, max_ptr, sum_ptr, out_ptr, t, pieces, padded_rows,
                    HEADS: tl.constexpr, KV_HEADS: tl.constexpr, DIM: tl.constexpr,
                    BLOCK_D: tl.constexpr, BLOCK_S: tl.constexpr):
    row_head = tl.program_id(0)
    m = tl.program_id(1)  # one query row
    group = HEADS // KV_HEADS
    s = tl.arange(0, BLOCK_S)
    d = tl.arange(0, BLOCK_D)
    at = (row_head * pieces + s) * padded_rows + m
    present = s < pieces
    best = tl.load(max_ptr + at, mask=present, other=float("-inf"))
    total = tl.load(sum_ptr + at, mask=present, other=0.0)
    top = tl.max(best, 0)
    weight = tl.exp(best - tl.where(top == float("-inf"), 0.0, top))
    norm = tl.sum(total * weight, 0)
    acc = tl.load(part_ptr + at[:, None] * BLOCK_D + d[None, :], mask=present[:, None], other=0.0)
    out = tl.sum(acc * weight[:, None], 0) / tl.where(norm > 0, norm, 1.0)
    row, kv_head = row_head // KV_HEADS, row_head % KV_HEADS
    token = row * t + m // group
    head = kv_head * group + m % group
    tl.store(out_ptr + (token * HEADS + head) * DIM + d, out.to(out_ptr.dtype.element_ty),
             mask=d < DIM)


@triton.jit
def _silu_mul_kernel(gate_ptr, up_ptr, out_ptr, width, stride, BLOCK: tl.constexpr):
    token = tl.program_id(0)
    c = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = c < width
    gate = tl.load(gate_ptr + token * stride + c, mask=inside, other=0.0).to(tl.float32)
    up = tl.load(up_ptr + token * stride + c, mask=inside, other=0.0).to(tl.float32)
    out = gate * tl.sigmoid(gate) * up
    tl.store(out_ptr + token * width + c, out.to(out_ptr.dtype.element_ty), mask=inside)


def _block_d(dim: int) -> int:
    return max(16, triton.next_power_of_2(dim))  # tl.dot takes 16 at least


def _cache_strides(layer_kv: torch.Tensor) -> tuple[int, int, int]:
    """(row, head, position) strides of one layer's cache: [2 * kv_heads, capacity, dim] (a
    single cache, one row) or [rows, 2 * kv_heads, capacity, dim] (a batch cache)."""
    if layer_kv.dim() == 3:
        return 0, layer_kv.stride(0), layer_kv.stride(1)
    return layer_kv.stride(0), layer_kv.stride(1), layer_kv.stride(2)


def rope_store(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, positions: torch.Tensor,
               layer_kv: torch.Tensor, tokens_per_row: int, heads: int,
               slots: torch.Tensor | None = None) -> torch.Tensor:
    """qkv: [n, heads + 2 * kv_heads, dim], contiguous; cos, sin: [capacity, dim] tables;
    positions: [n], where RoPE puts each token. Writes the rotated k and the v of token j at
    slots[j] (default: positions[j]) of its row's cache (row j // tokens_per_row); returns the
    rotated q [n, heads, dim]."""
    n, all_heads, dim = qkv.shape
    q = torch.empty(n, heads, dim, dtype=qkv.dtype, device=qkv.device)
    _rope_store_kernel[(n,)](
        qkv, cos, sin, positions, positions if slots is None else slots, q, layer_kv,
        tokens_per_row, *_cache_strides(layer_kv),
        HEADS=heads, KV_HEADS=(all_heads - heads) // 2, DIM=dim,
        BLOCK_H=triton.next_power_of_2(all_heads), BLOCK_D=triton.next_power_of_2(dim))
    return q


def attend(q: torch.Tensor, layer_kv: torch.Tensor, positions: torch.Tensor, rows: int,
           attend: int, scale: float, tree: torch.Tensor | None = None) -> torch.Tensor:
    """Attention of q [n, heads, dim] (rows x n / rows tokens, row-major) over the first
    `attend` positions of each row's cache, a key visible to a query when its position (its
    cache slot) is <= the query's. With `tree` ([n] int64 bitmasks; bit i: the row's i-th token
    of this step), a key among the step's own tokens is visible only where the query's bit for
    it is set: a tree of drafts verified at once. Returns [n, heads * dim] in q's dtype."""
    n, heads, dim = q.shape
    kv_heads = layer_kv.shape[-3] // 2
    t, group = n // rows, heads // kv_heads
    blocks = triton.cdiv(t * group, QUERY_ROWS)
    split = BLOCK_N * triton.cdiv(triton.cdiv(attend, BLOCK_N), MAX_SPLITS)
    pieces = triton.cdiv(attend, split)
    block_d = _block_d(dim)
    padded_rows = blocks * QUERY_ROWS
    stats = torch.empty(2, rows * kv_heads * pieces * padded_rows, dtype=torch.float32,
                        device=q.device)
    part = torch.empty(stats.shape[1], block_d, dtype=torch.float32, device=q.device)
    _attend_kernel[(rows * kv_heads, blocks, pieces)](
        q, layer_kv, positions, positions if tree is None else tree, part, stats[0], stats[1], t,
        attend, split, scale, *_cache_strides(layer_kv), padded_rows,
        HEADS=heads, KV_HEADS=kv_heads, DIM=dim, BLOCK_D=block_d, BLOCK_M=QUERY_ROWS,
        BLOCK_N=BLOCK_N, TREE=tree is not None)
    out = torch.empty(n, heads * dim, dtype=q.dtype, device=q.device)
    _combine_kernel[(rows * kv_heads, t * group)](
        part, stats[0], stats[1], out, t, pieces, padded_rows,
        HEADS=heads, KV_HEADS=kv_heads, DIM=dim, BLOCK_D=block_d,
        BLOCK_S=triton.next_power_of_2(pieces))
    return out


def silu_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """SiLU(gate) * up for gate, up [n, width] with the same row stride and unit column
    stride (two linear outputs, or the halves of a stacked one)."""
    n, width = gate.shape
    out = torch.empty(n, width, dtype=gate.dtype, device=gate.device)
    block = min(1024, triton.next_power_of_2(width))
    _silu_mul_kernel[(n, triton.cdiv(width, block))](gate, up, out, width, gate.stride(0),
                                                     BLOCK=block)
    return out


def check(device: torch.device, dtype: torch.dtype, heads: int, kv_heads: int, dim: int) -> None:
    """Launch each kernel once on two tokens of a model's head shape: a GPU or driver that
    Triton cannot compile for fails here, when an engine is built, rather than in a request."""
    qkv = torch.zeros(2, heads + 2 * kv_heads, dim, dtype=dtype, device=device)
    table = torch.ones(4, dim, dtype=dtype, device=device)
    positions = torch.arange(2, device=device)
    cache = torch.zeros(2 * kv_heads, 4, dim, dtype=dtype, device=device)
    q = rope_store(qkv, table, table, positions, cache, 2, heads)
    attend(q, cache, positions, 1, 4, 1.0)
    silu_mul(qkv[:, 0], qkv[:, 1])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
