"""A static KV cache and a small hand-written forward for Llama/Qwen2-family causal LMs.

gpt-fast style: K/V live in one preallocated tensor [layers, 2 * kv_heads, capacity, head_dim]
(the K heads, then the V heads), a cache is the list of token ids it holds (its length is the
pointer), rolling back is shortening that list, and a new prompt reuses the longest common
prefix, as `PrefixKV` does. The forward reads the HF model's own weights (copying only q/k/v,
stacked into one matrix; Qwen2's biases included) and computes what HF computes:
RMSNorm, RoPE from the model's own rotary module (so rope_theta and static rope scalings are the
checkpoint's), attention over the cache with an explicit mask (a key is visible to a query when
its position is <= the query's), tied or untied lm_head. A decode or verify step can also take a
tree of drafts (`forward`'s depth and tree bits): its tokens fill consecutive cache slots, RoPE
puts each at its depth, and each sees the cache before the step and its own ancestors.

On a CUDA device three groups of a layer's small kernels run as Triton kernels
(`speculative.kernels`): RoPE with the cache write, the attention of steps of few tokens, and
SiLU * up; elsewhere (and with `kernels=False`) the same computation runs as torch ops.

Two ways to run a step over the same code:
- eager, any device: the inputs have their real length and attention reads the cache up to the
  last written position (the CPU default);
- static shapes: the tokens are padded to a bucket (1, 2, 4, ... 32; a prompt goes in chunks
  padded to 64 ... 1024) and attention reads the whole capacity under the mask. Padded
  positions are written past the pointer and are never visible to a real token. On CUDA each
  bucket is captured once as a CUDA graph over static input buffers and replayed (the default
  there); a decode or verify step's graph ends with the logits and their argmax, so a greedy
  round reads a few ids (`run_argmax`) with nothing launched after the replay.
  `graphs="emulate"` runs the same capture sequence on any device with an eager stand-in for
  the graph that refills the same static output tensors at each replay: how the graph path is
  tested on a CPU.

Many requests decoding together (`infill batch`) use `StaticBatch`: the same forward over a
cache with a slot per row, each row at its own positions, one CUDA graph per row bucket.

A model this file cannot run exactly (another architecture, sliding-window attention, a rope
scaling that depends on the sequence length, quantized or offloaded weights) gets `PrefixKV`
from `kv_cache`, and `SPECULATIVE_STATIC=0` forces that everywhere (`eager`: no CUDA graphs).
A model whose forward is wrapped or hooked runs through that forward (see `StaticKV`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from array import array
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from speculative.cache import PrefixKV, common_prefix

log = logging.getLogger(__name__)

MODEL_TYPES = {"llama", "qwen2"}
STATIC_ROPE = {"default", "linear", "llama3", "yarn"}  # cos/sin depend on the position only
LOGIT_BUCKETS = (1, 2, 4, 8, 16, 32)  # decode and verify: the graph ends with the logits
TREE_TOKENS = LOGIT_BUCKETS[-1]  # a tree of drafts fills at most the largest verify step
CHUNK_BUCKETS = (64, 128, 256, 512, 1024)  # prefill chunks: the graph ends with the hidden states
MIN_CAPACITY = 1024
# Steps of at most `matmul_attention_tokens` query tokens compute attention as batched matmuls
# instead of SDPA. SDPA's memory-efficient kernel gives the queries of each (row, KV head) one
# thread block that walks all the keys (the whole capacity under static shapes) serially: with
# few queries, a handful of blocks on a GPU of 132 SMs, where cuBLAS spreads q @ K^T over the
# keys. Measured on an H200 (BENCHMARKS.md, 2026-11-29): a Qwen2.5-Coder-1.5B decode step
# 2.86 ms against 3.50 ms with SDPA, 7B 5.80 against 6.40; on this CPU the shipped target's
# decode step is 4% faster too. 32 covers decode, verify and batches of up to 32 rows. Where
# the Triton kernels run, these steps take `kernels.attend` instead (split over the keys, the
# slices past the last query skipped): 1.91 against 2.83 ms for that 1.5B step, with the other
# kernels (BENCHMARKS.md, seventh session).
MATMUL_ATTENTION_TOKENS = 32
# Under static shapes a step attends over the whole cache, 2,048 positions for a 512-token
# context: the attention of a Qwen2.5-Coder-1.5B decode step cost about 0.7 ms of its 2.8 on an
# H200 (BENCHMARKS.md, the step profile). With `attend_buckets` the decode/verify steps are
# captured once per attended length (ATTEND_MIN, 1.5x, 2x, 3x, 4x, ... that, up to the capacity:
# each at most 1.5x the one below, so a step attends over at most 1.5x the positions it needs)
# and a step runs the smallest that holds its positions. Measured on an H200 (BENCHMARKS.md,
# 2026-11-29, fourth session): 1.5B decode step 2.86 against 2.93 ms, 7B 5.68 against 5.78: the
# attention's kernels cost their launch more than their length, so it stays off (it multiplies
# the graphs captured at the first requests by ~7 for 2%).
ATTEND_BUCKETS = False
ATTEND_MIN = 256
# Gate and up as one matmul over a stacked copy of their weights: one GEMV of twice the size,
# which runs nearer the memory bandwidth than two (cuBLAS ran gate and up at ~2.9 TB/s of the
# H200's 4.8 in the step profile), at the cost of a copy of half the model's weights. Measured
# (BENCHMARKS.md, 2026-11-29, fourth session): 1.5B decode step 2.82 against 2.93 ms, 7B 5.66
# against 5.78: 2-4% for +50% weight memory, so it stays off.
STACK_MLP = False


def unsupported_reason(model) -> str | None:
    """Why the static path cannot run this model exactly, or None when it can."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) not in MODEL_TYPES:
        return f"model type {getattr(config, 'model_type', None)!r} (static path: llama, qwen2)"
    inner = getattr(model, "model", None)
    for name in ("embed_tokens", "layers", "norm", "rotary_emb"):
        if not hasattr(inner, name):
            return f"no model.{name}"
    if not isinstance(getattr(model, "lm_head", None), torch.nn.Linear):
        return "no lm_head"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act}"
    rope = getattr(inner.rotary_emb, "rope_type", "default")
    if rope not in STATIC_ROPE:
        return f"rope type {rope!r} (static path: {', '.join(sorted(STATIC_ROPE))})"
    if any(t != "full_attention" for t in getattr(config, "layer_types", None) or []):
        return "sliding-window layers"
    devices = set((getattr(model, "hf_device_map", None) or {}).values())
    if len(devices) > 1:
        return "model split over devices"
    tensors, linears = [], [model.lm_head]
    for layer in _layers(model):
        attn, mlp = layer.self_attn, layer.mlp
        if getattr(attn, "sliding_window", None) is not None:
            return "sliding-window attention"
        linears += [attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj,
                    mlp.gate_proj, mlp.up_proj, mlp.down_proj]
        tensors += [layer.input_layernorm.weight, layer.post_attention_layernorm.weight]
    for module in linears:
        if type(module) is not torch.nn.Linear or hasattr(module, "_hf_hook"):
            return f"{type(module).__name__} layers (quantized or offloaded weights)"
        tensors += [t for t in (module.weight, module.bias) if t is not None]
    tensors += [inner.embed_tokens.weight, inner.norm.weight]
    if len({(t.device, t.dtype) for t in tensors}) != 1 or not tensors[0].is_floating_point():
        return "weights of several devices or dtypes"
    return None


def _layers(model):
    return list(model.model.layers[: model.config.num_hidden_layers])


def _eps(norm) -> float:
    return float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))


@dataclass
class _Layer:
    """One decoder layer's weights. q/k/v are a stacked copy (one matmul instead of three),
    refreshed by `check_weights`; the model's own parameters are left as they are (views into
    one stacked tensor would be shared storage to `save_pretrained` and an optimizer). Gate and
    up are stacked too only with `stack_mlp` (see STACK_MLP): they are half of a Qwen2's
    weights, so their copy adds half the model again."""

    input_norm: torch.Tensor
    qkv: torch.Tensor  # q, k and v weights stacked
    qkv_bias: torch.Tensor | None
    o: torch.Tensor
    o_bias: torch.Tensor | None
    post_norm: torch.Tensor
    gate: torch.Tensor
    gate_bias: torch.Tensor | None
    up: torch.Tensor
    up_bias: torch.Tensor | None
    down: torch.Tensor
    down_bias: torch.Tensor | None
    eps: float
    post_eps: float
    scaling: float
    gate_up: torch.Tensor | None = None  # gate and up stacked (`stack_mlp`)
    gate_up_bias: torch.Tensor | None = None


def _stack(projs) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The weights of these linear layers stacked (and biases, zeros for one without): one
    matmul."""
    weight = torch.cat([p.weight for p in projs])
    if all(p.bias is None for p in projs):
        return weight, None
    return weight, torch.cat([p.bias if p.bias is not None else
                              torch.zeros(p.out_features, dtype=weight.dtype, device=weight.device)
                              for p in projs])


def _stacked(layer, stack_mlp: bool) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """(weight, bias) of each stacked copy of an HF layer: q/k/v, and gate/up if asked."""
    attn, mlp = layer.self_attn, layer.mlp
    copies = [_stack((attn.q_proj, attn.k_proj, attn.v_proj))]
    return copies + [_stack((mlp.gate_proj, mlp.up_proj))] if stack_mlp else copies


def _version(tensor: torch.Tensor) -> int:
    try:
        return tensor._version
    except RuntimeError:  # an inference tensor (made under inference_mode) cannot change
        return 0


def _attention_backends():
    """On CUDA, FlashAttention for the causal chunks (it takes no mask), else SDPA's
    memory-efficient kernel (math as the fallback): it takes an arbitrary mask, is captured by
    CUDA graphs, and does not depend on the cuDNN version (cuDNN's attention, first on Hopper
    in recent PyTorch, has had mask and graph-capture bugs)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                        SDPBackend.MATH])


def _sdpa_attention(q, keys, values, mask, scale):
    """q: [rows, kv_heads, group, T, dim]; keys, values: [rows or 1, kv_heads, keys, dim];
    mask: [rows, 1, group * T, keys]. Attention [rows, kv_heads, group * T, dim]."""
    rows, kv_heads, group, t, dim = q.shape
    q = q.reshape(rows, kv_heads, group * t, dim)
    return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=scale)


def _causal_attention(q, keys, values, mask, scale):
    """`_sdpa_attention` over a chunk's own keys under SDPA's causal rule (query i sees keys
    0..i; `mask` is None), the query heads in their own rows (the causal rule counts query
    rows, and grouping puts `group` heads' rows in one) and the K/V heads shared by SDPA's own
    grouped-query attention (FlashAttention's, on a GPU) rather than repeated per query head."""
    rows, kv_heads, group, t, dim = q.shape
    q = q.reshape(rows, kv_heads * group, t, dim)
    out = F.scaled_dot_product_attention(q, keys, values, is_causal=True, scale=scale,
                                         enable_gqa=True)
    return out.reshape(rows, kv_heads, group * t, dim)


def _matmul_attention(q, keys, values, mask, scale):
    """`_sdpa_attention` as batched matmuls (see MATMUL_ATTENTION_TOKENS). The scores and the
    softmax are fp32, as in SDPA's kernels: bf16 scores came out ~10x less accurate than SDPA
    against an fp64 reference. The probabilities meet V in its own dtype, as in those kernels."""
    dtype = torch.promote_types(keys.dtype, torch.float32)  # fp32, or a float64 model's own
    q = q.to(dtype, memory_format=torch.contiguous_format).flatten(2, 3)
    scores = torch.matmul(q, keys.to(dtype).transpose(-1, -2))
    probs = torch.softmax(torch.add(mask, scores, alpha=scale), -1)
    return torch.matmul(probs.to(values.dtype), values)


def _load_kernels(engine: "StaticModel", wanted: bool | None):
    """`speculative.kernels` where the engine's forward should use it, else None. wanted None:
    on a CUDA device where Triton imports and compiles the kernels (`kernels.check`); True:
    anywhere Triton runs (a CPU needs its interpreter, `TRITON_INTERPRET=1`), else
    ValueError."""
    device = engine.device
    if wanted is False or (wanted is None and device.type != "cuda"):
        return None
    interpreted = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")
    if device.type != "cuda" and not interpreted:
        raise ValueError("Triton kernels need a CUDA device (or TRITON_INTERPRET=1)")
    try:
        from speculative import kernels

        kernels.check(device, engine.dtype, engine.heads, engine.kv_heads, engine.head_dim)
    except Exception as exc:  # no Triton, or none for this GPU: the torch forward
        if wanted:
            raise ValueError(f"Triton kernels unavailable: {exc}") from exc
        log.warning("Triton kernels unavailable (%s): the torch forward", exc)
        return None
    return kernels


def _linear_residual(x, a, weight, bias):
    """x + a @ weight.T into x (the residual stream, which nothing else holds): one GEMM
    accumulating into x where there is no bias. Out of place, cuBLAS first copied x into the
    result: 56 copies of ~1 us per 1.5B decode step on an H200."""
    if bias is None:
        return x.addmm_(a, weight.t())
    return x.add_(F.linear(a, weight, bias))


class StaticModel:
    """The weights, the cache tensors and the captured steps of one model (shared by all its
    `StaticKV`s; `owner` is the one whose tokens the cache tensors hold)."""

    def __init__(self, model, *, graphs: bool | str | None = None,
                 static_shapes: bool | None = None, buckets: tuple[int, ...] | None = None,
                 min_capacity: int = MIN_CAPACITY,
                 matmul_attention_tokens: int = MATMUL_ATTENTION_TOKENS,
                 compile_steps: bool = False, attend_buckets: bool = ATTEND_BUCKETS,
                 stack_mlp: bool = STACK_MLP, kernels: bool | None = None):
        """graphs: None (CUDA graphs on a CUDA device), True, False or "emulate";
        static_shapes: pad to buckets and attend over the whole cache even without graphs;
        matmul_attention_tokens: see MATMUL_ATTENTION_TOKENS (0: SDPA always);
        compile_steps: run the decode and verify steps (the buckets that end with logits)
        through torch.compile, static shapes, before their capture: inductor fuses the ~17
        small kernels of a layer, the cost of a graph replay for a model launch-bound even
        inside a CUDA graph; a compile per bucket at its first use (and after the cache
        grows). Off by default: it gained nothing on an H200 (3.35 against 3.41 ms for a 1.5B
        decode step; `SPECULATIVE_STATIC=compile` turns it on);
        attend_buckets: see ATTEND_BUCKETS; stack_mlp: see STACK_MLP;
        kernels: the Triton kernels of `speculative.kernels` for RoPE and the cache write,
        attention of steps of up to `matmul_attention_tokens` tokens, and SiLU * up (None: on
        a CUDA device where Triton imports; True elsewhere needs `TRITON_INTERPRET=1`)."""
        reason = unsupported_reason(model)
        if reason:
            raise ValueError(f"static KV cache unsupported: {reason}")
        if graphs is True and model.lm_head.weight.device.type != "cuda":
            raise ValueError("CUDA graphs need a CUDA model")
        self.model_ref = weakref.ref(model)
        self.options = (graphs, static_shapes)
        self.buckets = tuple(sorted(buckets or LOGIT_BUCKETS + CHUNK_BUCKETS))
        self.min_capacity = min_capacity
        self.matmul_attention_tokens = matmul_attention_tokens
        self.attend_buckets = attend_buckets
        self.stack_mlp = stack_mlp
        self.compile_steps = compile_steps
        self.kernels_wanted = kernels
        self.owner = None
        self.capacity = 0
        self._build()

    # --- weights and buffers -------------------------------------------------------------

    def _build(self) -> None:
        """Read the model: at the start, and again when its weights moved (`model.to(...)`)."""
        model = self.model_ref()
        config, inner = model.config, model.model
        graphs, static_shapes = self.options
        self.device = model.lm_head.weight.device
        cuda = self.device.type == "cuda"
        # CUDA graphs by default on a CUDA device; none once the model has moved off one
        self.graphs = cuda if graphs is None or (graphs is True and not cuda) else graphs
        self.static_shapes = bool(self.graphs) or bool(static_shapes)
        self.dtype = model.lm_head.weight.dtype
        first = _layers(model)[0].self_attn
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = first.q_proj.out_features // self.heads
        self.kernels = _load_kernels(self, self.kernels_wanted)
        self.hidden = config.hidden_size
        with torch.inference_mode():
            self.layers = [self._layer(layer) for layer in _layers(model)]
        self.embed = inner.embed_tokens.weight
        self.final_norm, self.final_eps = inner.norm.weight, _eps(inner.norm)
        self.lm_head, self.lm_head_bias = model.lm_head.weight, model.lm_head.bias
        self.parameters = list(model.parameters())
        self.compiled_forward = (torch.compile(self.forward, dynamic=False)
                                 if self.compile_steps else None)
        self.fingerprint = self._fingerprint()
        self.capacity, self.steps, self.owner = 0, {}, None
        self.attend_lengths: dict[int, list[int]] = {}  # per bucket, set with the steps
        self.batch = None  # the batch cache (`rows`), made on first use

    def _layer(self, layer) -> _Layer:
        attn, mlp = layer.self_attn, layer.mlp
        (qkv, qkv_bias), *mlp_stack = _stacked(layer, self.stack_mlp)
        gate_up, gate_up_bias = mlp_stack[0] if mlp_stack else (None, None)
        return _Layer(layer.input_layernorm.weight, qkv, qkv_bias, attn.o_proj.weight,
                      attn.o_proj.bias, layer.post_attention_layernorm.weight,
                      mlp.gate_proj.weight, mlp.gate_proj.bias, mlp.up_proj.weight,
                      mlp.up_proj.bias, mlp.down_proj.weight, mlp.down_proj.bias,
                      _eps(layer.input_layernorm), _eps(layer.post_attention_layernorm),
                      float(getattr(attn, "scaling", self.head_dim ** -0.5)),
                      gate_up, gate_up_bias)

    def _fingerprint(self):
        """Where the weights live and their version counters: a training step changes the
        versions (the stacked q/k/v copy is refreshed), `model.to(...)` the storage (rebuild)."""
        return (tuple(t.data_ptr() for t in self.parameters),
                tuple(_version(t) for t in self.parameters))

    @torch.inference_mode()
    def check_weights(self) -> None:
        """Follow weights changed since the last call (cheap: two ints per parameter); the
        cache starts over."""
        now = self._fingerprint()
        if now == self.fingerprint:
            return
        self.owner = None  # the cached K/V came from the old weights
        if now[0] != self.fingerprint[0]:
            log.info("static KV cache: the model's weights moved; rebuilding")
            self._build()
            return
        for layer, hf_layer in zip(self.layers, _layers(self.model_ref())):
            copies = ((layer.qkv, layer.qkv_bias), (layer.gate_up, layer.gate_up_bias))
            for (weight, bias), (new_weight, new_bias) in zip(copies, _stacked(hf_layer, self.stack_mlp)):
                weight.copy_(new_weight)
                if new_bias is not None:
                    bias.copy_(new_bias)
        self.fingerprint = self._fingerprint()

    def _ensure_capacity(self, needed: int) -> None:
        """Room for `needed` positions; a larger cache keeps its contents, and its steps are
        captured again (over the new tensors) at the next static-shape run."""
        if needed <= self.capacity:
            return
        capacity = max(self.min_capacity, 1 << (needed - 1).bit_length())
        shape = (len(self.layers), 2 * self.kv_heads, capacity, self.head_dim)
        kv = torch.zeros(shape, dtype=self.dtype, device=self.device)
        if self.capacity:
            kv[:, :, : self.capacity] = self.kv
        self.kv, self.capacity = kv, capacity
        self.positions = torch.arange(capacity, device=self.device)
        self.cos, self.sin = self._rope_tables(capacity)
        self.steps = {}

    def _rope_tables(self, capacity: int):
        """cos and sign-folded sin per position, from the model's own rotary module, so that
        q * cos + cat(q2, q1) * sin equals HF's q * cos + rotate_half(q) * sin."""
        rotary = self.model_ref().model.rotary_emb
        probe = torch.zeros(1, dtype=torch.float32, device=self.device)
        cos, sin = rotary(probe, torch.arange(capacity, device=self.device)[None])
        cos, sin = cos[0].float(), sin[0].float().clone()
        sin[:, : self.head_dim // 2] *= -1
        return cos.to(self.dtype), sin.to(self.dtype)

    # --- the forward ---------------------------------------------------------------------

    def forward(self, ids: torch.Tensor, start, attend: int, causal: bool = False,
                depth: torch.Tensor | None = None, tree: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Final hidden states [T, hidden] of `ids` at positions start.., writing their K/V
        into the cache; attention reads the first `attend` cache positions under the mask, or,
        `causal`, only the chunk's own keys under SDPA's causal rule (see `causal_chunk`).
        `start` is an int or a 1-element tensor (the graphs read it from their input buffer).
        A tree of drafts (`drafters.Tree.inputs`): token i still goes to slot start + i, but RoPE
        puts it at start + depth[i], and of the step's own tokens it sees those whose bits
        tree[i] sets (its ancestors and itself).
        No host synchronisation: this is what a CUDA graph captures."""
        slots = self.positions[:ids.shape[0]] + start
        positions = slots if depth is None else depth + start
        return self._forward(ids, positions[None], attend, self.kv, self.cos, self.sin,
                             self.positions, causal, slots[None], tree)

    def causal_chunk(self, start: int, tokens: int) -> bool:
        """Whether a forward of `tokens` tokens at positions start.. attends causally within
        itself: a prompt's first chunk, which no earlier key precedes, of more tokens than the
        matmul attention takes. SDPA's causal kernels (FlashAttention on a GPU) then replace its
        masked attention over the whole cache, whose memory-efficient kernel walks every key
        of the capacity serially per query block: on an H200 that was 1.2 ms of a shipped
        target's 1.5 ms prefill of ~925 tokens, whatever the chunk's size (BENCHMARKS.md)."""
        return start == 0 and tokens > self.matmul_attention_tokens

    def forward_rows(self, ids: torch.Tensor, positions: torch.Tensor, attend: int,
                     cache: "StaticBatch", causal: bool = False) -> torch.Tensor:
        """The same forward over a batch cache, each row in its own cache slot: one token per
        row ([B] ids at [B] positions; hidden states [B, hidden]) or T per row ([B, T] ids at
        [B, T] positions; hidden states [B * T, hidden], row-major)."""
        rows = ids.shape[0]  # the first `rows` slots
        if ids.dim() == 1:
            ids, positions = ids[:, None], positions[:, None]
        return self._forward(ids.reshape(-1), positions, attend, cache.kv[:, :rows], cache.cos,
                             cache.sin, cache.positions, causal)

    def _forward(self, ids, positions, attend, kv, cos_table, sin_table, arange, causal=False,
                 slots=None, tree=None):
        """positions: [rows, T], RoPE's; slots: [rows, T], the cache's (default: positions);
        kv: [layers, 2 * kv_heads, capacity, dim] for one row (the single cache) or
        [layers, rows, 2 * kv_heads, capacity, dim] (a batch cache); tree: see `forward`.
        causal: every row's positions are 0..T-1 (`causal_chunk`): no mask is built."""
        rows, t = positions.shape
        slots = positions if slots is None else slots
        flat, flat_slots = positions.reshape(-1), slots.reshape(-1)
        path = self._attention_path(rows * t, causal)
        mask = None
        if path in ("matmul", "sdpa"):
            visible = arange[:attend] <= slots[..., None]  # [rows, T, attend]
            if tree is not None:  # of the step's own keys, the ones the tree's bits set
                own = arange[:attend] - slots[:, :1, None]  # [rows, 1, attend]
                bits = (tree.view(rows, t, 1) >> own.clamp(0, 63)) & 1
                visible = visible & ((own < 0) | (bits != 0))
            mask = torch.zeros(visible.shape, dtype=self.dtype, device=self.device)
            group = self.heads // self.kv_heads
            mask = mask.masked_fill(~visible, float("-inf")).repeat(1, group, 1)[:, None]
        # the kernel reads the tables at each position; the torch path multiplies per token
        rope = (cos_table, sin_table) if self.kernels else \
            self._rope_rows(cos_table, sin_table, flat)
        x = F.embedding(ids, self.embed)
        with _attention_backends() if self.device.type == "cuda" else contextlib.nullcontext():
            x = self._layers(x, flat, flat_slots, rows, rope, mask, attend, kv, path, tree)
        return F.rms_norm(x, (self.hidden,), self.final_norm, self.final_eps)

    def _attention_path(self, tokens: int, causal: bool) -> str:
        """How a forward of `tokens` tokens attends (static per CUDA graph): a causal chunk
        within itself; few tokens by the Triton kernel where it runs, else by matmuls (see
        MATMUL_ATTENTION_TOKENS); more under the mask by SDPA."""
        if causal:
            return "causal"
        if tokens <= self.matmul_attention_tokens:
            return "kernel" if self.kernels else "matmul"
        return "sdpa"

    def _rope_rows(self, cos_table, sin_table, positions):
        """cos and sin [T, heads + 2 * kv_heads, dim] for the q, k and v heads of each token.
        V's (cos 1, sin 0) leave it as it is: RoPE then hands K and V over side by side, as the
        cache holds them, and one copy per layer writes both."""
        n, qk, v = positions.shape[0], self.heads + self.kv_heads, self.kv_heads
        cos = cos_table.index_select(0, positions)[:, None]
        sin = sin_table.index_select(0, positions)[:, None]
        cos = torch.cat((cos.expand(n, qk, -1), torch.ones_like(cos).expand(n, v, -1)), 1)
        sin = torch.cat((sin.expand(n, qk, -1), torch.zeros_like(sin).expand(n, v, -1)), 1)
        return cos, sin

    def _rope_and_store(self, qkv, positions, slots, rows, rope, layer_kv, where
                        ) -> torch.Tensor:
        """RoPE on the q and k heads of qkv [n, heads + 2 * kv_heads, dim]; k and v written
        into this layer's cache at their slots; returns q [n, heads, dim]."""
        if self.kernels:
            return self.kernels.rope_store(qkv, *rope, positions, layer_kv,
                                           qkv.shape[0] // rows, self.heads, slots)
        cos, sin = rope
        half = self.head_dim // 2
        roped = qkv * cos  # q and k rotated, v as it was (see `_rope_rows`)
        roped.addcmul_(torch.cat((qkv[..., half:], qkv[..., :half]), -1), sin)
        q, new_kv = roped[:, :self.heads], roped[:, self.heads:]
        if layer_kv.dim() == 3:  # the single cache
            layer_kv.index_copy_(1, slots, new_kv.transpose(0, 1))
        else:  # each row in its own slot
            layer_kv.scatter_(2, where, new_kv.view(rows, -1, *new_kv.shape[1:]).transpose(1, 2))
        return q

    def _attend(self, q, layer_kv, slots, rows, mask, attend: int, path: str,
                scaling: float, tree=None) -> torch.Tensor:
        """Attention of q [n, heads, dim] over this layer's cache: [n, heads * dim]."""
        if path == "kernel":
            return self.kernels.attend(q, layer_kv, slots, rows, attend, scaling, tree)
        n, heads, kv_heads, dim = q.shape[0], self.heads, self.kv_heads, self.head_dim
        t, group = n // rows, heads // kv_heads
        # [rows, 2 * kv_heads, attend, dim]; a causal chunk's own keys are its first `attend`
        layer_kv = layer_kv[None, :, :attend] if layer_kv.dim() == 3 else layer_kv[:, :, :attend]
        keys, values = layer_kv[:, :kv_heads], layer_kv[:, kv_heads:]
        # grouped-query attention without copying K/V per head: the `group` query heads
        # that share a KV head become `group` times as many query rows
        q = q.reshape(rows, t, kv_heads, group, dim).permute(0, 2, 3, 1, 4)
        attention = {"causal": _causal_attention, "matmul": _matmul_attention,
                     "sdpa": _sdpa_attention}[path]
        a = attention(q, keys, values, mask, scaling)
        return a.reshape(rows, kv_heads, group, t, dim).permute(0, 3, 1, 2, 4).reshape(n, -1)

    def _layers(self, x, positions, slots, rows, rope, mask, attend: int, kv_cache, path: str,
                tree=None) -> torch.Tensor:
        """x: [rows * T, hidden], row-major; positions, slots: [rows * T]."""
        n, kv_heads, dim = x.shape[0], self.kv_heads, self.head_dim
        where = None
        if kv_cache.dim() == 5 and not self.kernels:  # where each row's K/V go in its slot
            where = slots.view(rows, 1, -1, 1).expand(rows, 2 * kv_heads, -1, dim)
        for i, w in enumerate(self.layers):
            h = F.rms_norm(x, (self.hidden,), w.input_norm, w.eps)
            qkv = F.linear(h, w.qkv, w.qkv_bias).view(n, self.heads + 2 * kv_heads, dim)
            q = self._rope_and_store(qkv, positions, slots, rows, rope, kv_cache[i], where)
            a = self._attend(q, kv_cache[i], slots, rows, mask, attend, path, w.scaling, tree)
            x = _linear_residual(x, a, w.o, w.o_bias)
            h = F.rms_norm(x, (self.hidden,), w.post_norm, w.post_eps)
            if w.gate_up is not None:
                gate, up = F.linear(h, w.gate_up, w.gate_up_bias).split(w.gate.shape[0], -1)
            else:
                gate, up = F.linear(h, w.gate, w.gate_bias), F.linear(h, w.up, w.up_bias)
            a = self.kernels.silu_mul(gate, up) if self.kernels else F.silu(gate).mul_(up)
            x = _linear_residual(x, a, w.down, w.down_bias)
        return x

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden, self.lm_head, self.lm_head_bias)

    # --- running ids through it ----------------------------------------------------------

    @torch.inference_mode()
    def run(self, ids: list[int], start: int, rows: str = "all") -> torch.Tensor:
        """Logits of `ids` fed at positions start.. (rows "all": [len, V]; "last": [1, V])."""
        n = len(ids)
        if n == 0:
            raise ValueError("no tokens to feed")
        if not self.static_shapes:
            self._ensure_capacity(start + n)
            hidden = self.forward(torch.tensor(ids, device=self.device), start, start + n,
                                  self.causal_chunk(start, n))
            return self.logits(hidden[-1:] if rows == "last" else hidden)
        largest = self.buckets[-1]
        chunks = [(ids[i: i + largest], start + i) for i in range(0, n, largest)]
        buckets = [self._bucket(len(chunk)) for chunk, _ in chunks]
        self._ready(max(at + bucket for (_, at), bucket in zip(chunks, buckets)))
        out = []
        for (chunk, at), bucket in zip(chunks, buckets):
            step = self.steps[self._step_key(bucket, at)]
            result = step(chunk, at)[: len(chunk)]
            if rows == "last":
                if at + len(chunk) == start + n:
                    out.append(result[-1:] if step.logits else self.logits(result[-1:]))
            else:
                out.append(result if step.logits else self.logits(result))
        return torch.cat(out) if len(out) > 1 else out[0].clone()

    def _bucket(self, tokens: int) -> int:
        """The smallest step size that holds `tokens` (no more than the largest bucket)."""
        return next(b for b in self.buckets if b >= tokens)

    def _ready(self, needed: int) -> None:
        """Static shapes: room for positions up to `needed` (padding included) and the steps
        captured."""
        if needed > self.capacity:
            # a new cache is captured again; room past `needed` for the capture's warm-up runs,
            # which write K/V at the very end of the cache
            self._ensure_capacity(needed + self.buckets[-1])
        if not self.steps:
            self._prepare_steps()

    def run_argmax(self, ids: list[int], start: int, tree: tuple | None = None) -> list[int]:
        """The argmax of `run(ids, start)` at each position (greedy decoding). A decode or
        verify step's graph computes it: a few ids come back to the host, with no launch of a
        copy of the logits and of an argmax kernel after the step (two of a greedy round's
        ~three host round trips to the GPU driver).
        tree: (depths, visibility bits), one of each per id (`forward`), for a tree of drafts
        in slots start..: static shapes and at most TREE_TOKENS ids."""
        if not torch.is_inference_mode_enabled():  # (a decorator would cost each round ~4 us)
            with torch.inference_mode():
                return self.run_argmax(ids, start, tree)
        n = len(ids)
        if self.static_shapes and 0 < n <= LOGIT_BUCKETS[-1]:
            bucket = self._bucket(n)
            self._ready(start + bucket)
            step = self.steps[self._step_key(bucket, start)]
            if step.logits:
                return step.argmax(ids, start, tree)
        if tree is not None:
            raise ValueError(f"a tree of drafts needs static shapes and at most "
                             f"{TREE_TOKENS} tokens ({n} given)")
        return self.run(ids, start).argmax(-1).tolist()

    def rows(self) -> "StaticBatch":
        """This model's batch cache (one per model, so its steps are captured once)."""
        if self.batch is None:
            self.batch = StaticBatch(self)
        return self.batch

    def _attend_sizes(self, bucket: int) -> list[int]:
        """The attended lengths a step of `bucket` tokens is captured for (ascending)."""
        if not (self.attend_buckets and bucket <= LOGIT_BUCKETS[-1]):
            return [self.capacity]
        sizes, size = [], ATTEND_MIN
        while size < self.capacity:
            sizes += [n for n in (size, size * 3 // 2) if bucket <= n < self.capacity]
            size *= 2
        return sizes + [self.capacity]

    def _step_key(self, bucket: int, at: int) -> tuple[int, int]:
        """The step for `bucket` tokens at positions at..: the causal chunk (attended length 0
        in the key), or the smallest attended length that holds them."""
        if self.causal_chunk(at, bucket):
            return bucket, 0
        return bucket, next(a for a in self.attend_lengths[bucket] if a >= at + bucket)

    def drop_kernels(self, exc: Exception) -> bool:
        """After a step failed: if the Triton kernels were on, turn them off (a GPU or driver
        Triton cannot compile for) and say so; the caller runs the torch forward instead."""
        if self.kernels is None:
            return False
        log.warning("Triton kernels failed (%s); the torch forward instead", exc)
        self.kernels = None
        return True

    def _prepare_steps(self) -> None:
        # per bucket, once per capture rather than at every step (`_step_key`)
        self.attend_lengths = {b: self._attend_sizes(b) for b in self.buckets}
        steps = {(b, a): _Step(self, b, logits=b <= LOGIT_BUCKETS[-1], attend=a)
                 for b in self.buckets for a in self.attend_lengths[b]}
        steps.update({(b, 0): _Step(self, b, logits=b <= LOGIT_BUCKETS[-1], attend=b, causal=True)
                      for b in self.buckets if self.causal_chunk(0, b)})
        if self.graphs:
            cuda = self.graphs is True
            try:
                with torch.cuda.device(self.device) if cuda else contextlib.nullcontext():
                    pool = torch.cuda.graph_pool_handle() if cuda else None
                    for key in sorted(steps, reverse=True):  # the largest first: one pool
                        steps[key].capture(pool)
            except Exception as exc:  # run the same steps eagerly rather than fail a request
                if self.drop_kernels(exc):
                    return self._prepare_steps()
                log.warning("CUDA graph capture failed (%s); static shapes without graphs", exc)
                self.graphs = False
                steps = {k: _Step(self, s.bucket, s.logits, s.attend, s.causal)
                         for k, s in steps.items()}
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        self.steps = steps


def _ids_tensor(ids: array) -> torch.Tensor:
    """A CPU tensor over the ids' buffer: for a 1,024-token prompt chunk, 20 us on this
    project's CPU machine against 157 us for torch.tensor of the list (a step's host time is
    on every request's critical path)."""
    return torch.frombuffer(ids, dtype=torch.long)


def chain_inputs(tokens: int) -> tuple[array, array]:
    """The tree inputs (depths, visibility bits) of `tokens` tokens in a row: each one deeper
    than the last, each seeing all before it and itself."""
    return array("q", range(tokens)), array("q", ((1 << (i + 1)) - 1 for i in range(tokens)))


class _Step:
    """One static-shape step: `bucket` tokens and the start position in one input buffer (one
    host-to-device copy), a CUDA graph replay where captured, else the same function eagerly.
    A logits step (decode or verify) also takes each token's depth and visibility bits
    (`StaticModel.forward`), so one graph verifies a row of drafts or a tree of them."""

    def __init__(self, engine: StaticModel, bucket: int, logits: bool, attend: int,
                 causal: bool = False):
        self.engine, self.bucket, self.logits, self.attend = engine, bucket, logits, attend
        self.causal = causal  # a prompt's first chunk, at position 0 (`causal_chunk`)
        size = 3 * bucket + 1 if logits else bucket + 1  # ids[, depths, bits], start
        self.input = torch.zeros(size, dtype=torch.long, device=engine.device)
        self.chain_depth, self.chain_bits = chain_inputs(bucket) if logits else (None, None)
        self.graph = self.output = self.best = None  # best: the argmax ids of a logits step

    def _park(self) -> None:
        """Warm-up and capture write K/V at the end of the cache, where no real token is yet
        (a causal chunk too: its graph reads its position from the input like the others, and
        is replayed only at position 0)."""
        self.input[-1] = self.engine.capacity - self.bucket

    def _run(self) -> torch.Tensor:
        engine = self.engine
        forward = engine.compiled_forward if self.logits and engine.compiled_forward else \
            engine.forward
        b = self.bucket
        if not self.logits:
            return forward(self.input[:b], self.input[-1:], self.attend, self.causal)
        hidden = forward(self.input[:b], self.input[-1:], self.attend, self.causal,
                         self.input[b:2 * b], self.input[2 * b:3 * b])
        return engine.logits(hidden)

    def _outputs(self) -> tuple[torch.Tensor, ...]:
        """What a replay refills: the output, and for a logits step its argmax ids."""
        output = self._run()
        return (output, output.argmax(-1)) if self.logits else (output,)

    def capture(self, pool) -> None:
        self._park()
        if self.engine.graphs == "emulate":
            for _ in range(2):
                self._run()
            self.graph = _EagerGraph(self._outputs)
            self._keep(self.graph.outputs)
            return
        stream = torch.cuda.Stream(self.engine.device)
        stream.wait_stream(torch.cuda.current_stream(self.engine.device))
        with torch.cuda.stream(stream):  # warm up on a side stream, as PyTorch's docs say
            for _ in range(2):
                self._outputs()
        torch.cuda.current_stream(self.engine.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
            outputs = self._outputs()
        self.graph = graph
        self._keep(outputs)

    def _keep(self, outputs: tuple[torch.Tensor, ...]) -> None:
        """The static tensors a replay refills."""
        self.output, self.best = outputs[0], outputs[1] if len(outputs) > 1 else None

    def __call__(self, ids: list[int], start: int, tree: tuple | None = None) -> torch.Tensor:
        """tree: (depths, visibility bits) of the ids, for a logits step (default: a row)."""
        n = len(ids)
        inputs = array("q", ids)
        inputs.extend([0] * (self.bucket - n))
        if self.logits:
            if tree is None:
                inputs.extend(self.chain_depth)
                inputs.extend(self.chain_bits)
            else:  # the padding as a row after the tree: it sees all, none see it
                depths, bits = tree
                inputs.extend(depths)
                inputs.extend(self.chain_depth[n:])
                inputs.extend(bits)
                inputs.extend(self.chain_bits[n:])
        inputs.append(start)
        self.input.copy_(_ids_tensor(inputs), non_blocking=True)
        return self._replay()

    def _replay(self) -> torch.Tensor:
        """The step over what `input` holds now: the graph if captured, else eagerly."""
        if self.graph is None:
            return self._run()
        self.graph.replay()
        return self.output

    def argmax(self, ids: list[int], start: int, tree: tuple | None = None) -> list[int]:
        """The argmax ids at the positions of `ids` (a logits step)."""
        logits = self(ids, start, tree)
        best = self.best if self.graph is not None else logits.argmax(-1)
        return best[: len(ids)].tolist()


class StaticBatch:
    """Many rows decoding together, each in its own slot of one cache
    [layers, slots, 2 * kv_heads, capacity, head_dim], at its own positions (its prompt at 0..):
    what a row computes is what it would compute alone, whatever the other rows' lengths.

    The prompts go through that forward together (`forward_rows`, eagerly, in chunks of at
    most PREFILL_TOKENS tokens over all rows), right-padded: a padding token sits past its
    row's prompt, where the row's first new token later overwrites it and no real token sees
    it. Decoding feeds one token per row per step through the same forward; the mask shows each
    row its own slot up to its own position. A row computes what it would alone up to rounding
    (other shapes, other kernels): greedy text equals the single path's but for near-ties.

    With static shapes the rows are padded to a bucket (1, 2, 4, ... 64), one CUDA graph per
    bucket (emulated on the CPU as `StaticModel`'s steps are); padding rows and rows that
    finished feed token 0 at the parking position (capacity - 1, which no real token reaches)
    of their own slot, so they touch no real row. When the active rows fit a smaller bucket,
    those in slots past it move into free slots below it. Eagerly (the CPU default) the bucket
    is the number of active rows and attention reads up to the furthest row's position."""

    BUCKETS = (1, 2, 4, 8, 16, 32, 64)
    # tokens (rows x chunk) per prefill forward: bounds its mask and attention scores, e.g.
    # 6 query heads per KV head x 16384 x 2048 keys x 2 bytes = 400 MB for a 1.5B Qwen
    PREFILL_TOKENS = 16384

    def __init__(self, engine: StaticModel):
        self.engine = engine
        self.device, self.dtype = engine.device, engine.dtype
        self.graphs = engine.graphs
        self.static_shapes = engine.static_shapes
        self.slots = self.capacity = 0
        self.steps: dict[int, _RowStep] = {}
        self.slot_of: list[int] = []  # the active rows' slots, in the caller's order
        self.lengths: list[int] = []  # tokens in each active row's cache

    def bucket(self, rows: int) -> int:
        if not self.static_shapes:
            return rows
        return next(b for b in self.BUCKETS if b >= rows)

    def _ensure(self, slots: int, needed: int) -> None:
        """Room for `slots` rows of `needed` positions plus the parking position."""
        capacity = max(64, 1 << needed.bit_length())  # > needed: capacity - 1 is free
        if slots <= self.slots and capacity <= self.capacity:
            return
        slots, capacity = max(slots, self.slots), max(capacity, self.capacity)
        engine = self.engine
        shape = (len(engine.layers), slots, 2 * engine.kv_heads, capacity, engine.head_dim)
        self.kv = None  # free the old cache first
        self.kv = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.slots, self.capacity = slots, capacity
        self.positions = torch.arange(capacity, device=self.device)
        self.cos, self.sin = engine._rope_tables(capacity)
        self.steps = {}  # captured over the old tensors: capture again

    @torch.inference_mode()
    def start(self, prompts: list[list[int]], room: int) -> torch.Tensor:
        """Prefill a row per prompt (room: new tokens each may add); logits [rows, V] after
        each prompt. At most `BUCKETS[-1]` rows."""
        if not prompts or len(prompts) > self.BUCKETS[-1]:
            raise ValueError(f"1 to {self.BUCKETS[-1]} rows")
        engine = self.engine
        engine.check_weights()
        if engine.batch is not self:  # the weights moved: this cache belongs to the old ones
            raise RuntimeError("stale batch cache")
        if any(not p for p in prompts):
            raise ValueError("an empty prompt")
        self._ensure(self.bucket(len(prompts)), max(len(p) for p in prompts) + room)
        logits = self._prefill(prompts)
        self.slot_of = list(range(len(prompts)))
        self.lengths = [len(p) for p in prompts]
        return logits

    def _prefill(self, prompts: list[list[int]]) -> torch.Tensor:
        """All prompts into their slots (0..), chunk by chunk; logits after each [rows, V]."""
        rows, longest = len(prompts), max(len(p) for p in prompts)
        chunk = max(1, self.PREFILL_TOKENS // rows)
        last: list[torch.Tensor | None] = [None] * rows
        for at in range(0, longest, chunk):
            width = min(chunk, longest - at)
            pieces = [p[at: at + width] for p in prompts]
            ids = torch.tensor([piece + [0] * (width - len(piece)) for piece in pieces],
                               device=self.device)
            positions = self.positions[at: at + width].expand(rows, width)
            hidden = self.engine.forward_rows(ids, positions, at + width, self,
                                              self.engine.causal_chunk(at, width))
            hidden = hidden.view(rows, width, -1)
            for row, prompt in enumerate(prompts):
                if at < len(prompt) <= at + width:  # the row's last prompt token is here
                    last[row] = hidden[row, len(prompt) - 1 - at]
        return self.engine.logits(torch.stack(last))

    @torch.inference_mode()
    def keep(self, rows: list[int]) -> None:
        """Only these active rows (indices into the current active list) go on."""
        self.slot_of = [self.slot_of[j] for j in rows]
        self.lengths = [self.lengths[j] for j in rows]
        bucket = self.bucket(len(rows)) if rows else 0
        free = sorted(set(range(bucket)) - set(self.slot_of))
        for j, slot in enumerate(self.slot_of):
            if slot >= bucket:  # move it down, the tokens it holds only
                to, n = free.pop(0), self.lengths[j]
                self.kv[:, to, :, :n] = self.kv[:, slot, :, :n]
                self.slot_of[j] = to

    @torch.inference_mode()
    def step(self, tokens: list[int]) -> torch.Tensor:
        """Feed one token per active row (in the active order); logits [rows, V]."""
        bucket = self.bucket(len(self.slot_of))
        ids, where = [0] * bucket, [self.capacity - 1] * bucket
        for slot, token, length in zip(self.slot_of, tokens, self.lengths):
            ids[slot], where[slot] = token, length
        if self.static_shapes:
            step = self.steps.get(bucket)
            if step is None:
                step = self.steps[bucket] = self._capture(bucket)
            logits = step(ids + where)
        else:
            inputs = torch.tensor(ids + where, device=self.device)
            hidden = self.engine.forward_rows(inputs[:bucket], inputs[bucket:],
                                              max(self.lengths) + 1, self)
            logits = self.engine.logits(hidden)
        self.lengths = [n + 1 for n in self.lengths]
        if self.slot_of == list(range(bucket)):
            return logits
        return logits.index_select(0, torch.tensor(self.slot_of, device=self.device))

    def _capture(self, bucket: int) -> "_RowStep":
        step = _RowStep(self, bucket)
        if not self.graphs:
            return step
        cuda = self.graphs is True
        try:
            with torch.cuda.device(self.device) if cuda else contextlib.nullcontext():
                step.capture(None)
            if cuda:
                torch.cuda.synchronize(self.device)
            return step
        except Exception as exc:  # run the same step eagerly rather than fail a batch
            if self.engine.drop_kernels(exc):
                self.steps = {}  # captured with the kernels: capture again without them
                return self._capture(bucket)
            log.warning("CUDA graph capture of %d rows failed (%s); static shapes without "
                        "graphs", bucket, exc)
            self.graphs = False
            self.steps = {}
            return _RowStep(self, bucket)


class _RowStep(_Step):
    """One decoding step of `bucket` rows: their tokens, then their positions, in one input
    buffer; logits [bucket, V]."""

    def __init__(self, batch: StaticBatch, bucket: int):
        self.engine, self.bucket, self.logits = batch, bucket, True
        self.input = torch.zeros(2 * bucket, dtype=torch.long, device=batch.device)
        self.graph = self.output = None

    def _park(self) -> None:
        self.input[: self.bucket] = 0
        self.input[self.bucket:] = self.engine.capacity - 1

    def _run(self) -> torch.Tensor:
        batch, b = self.engine, self.bucket
        hidden = batch.engine.forward_rows(self.input[:b], self.input[b:], batch.capacity, batch)
        return batch.engine.logits(hidden)

    def _outputs(self) -> tuple[torch.Tensor, ...]:
        return (self._run(),)  # the rows choose their tokens from the logits (`infill.batched`)

    def __call__(self, inputs: list[int]) -> torch.Tensor:
        self.input.copy_(_ids_tensor(array("q", inputs)), non_blocking=True)
        return self._replay()


class _EagerGraph:
    """A CUDA graph's contract without CUDA: replay refills the same output tensors."""

    def __init__(self, run):
        """run: returns a tuple of tensors."""
        self.run = run
        self.outputs = run()

    def replay(self) -> None:
        for output, new in zip(self.outputs, self.run()):
            output.copy_(new)


def _observed(model) -> bool:
    """The model's forward is replaced on the instance or hooked: someone watches each step
    (a probe, a wrapper, a profiler), and the static path would step around them."""
    return "forward" in vars(model) or bool(model._forward_hooks or model._forward_pre_hooks)


class StaticKV:
    """`PrefixKV`'s interface over a `StaticModel`: the ids this cache holds are its length
    pointer; rollback shortens them, prefill reuses their common prefix with the prompt.

    While the model's forward is observed (`_observed`), a generation runs on a `PrefixKV`
    through that forward instead, so whoever watches it sees every step."""

    def __init__(self, engine: StaticModel):
        self.engine = engine
        self.ids: list[int] = []
        self.hf: PrefixKV | None = None  # the cache of observed generations
        self.active: PrefixKV | None = None  # set while one runs

    def reset(self) -> None:
        self.ids = []
        if self.hf is not None:
            self.hf.reset()

    def rollback(self, length: int) -> None:
        if self.active is not None:
            self.active.rollback(length)
        else:
            del self.ids[length:]

    def feed(self, ids: list[int], rows: str = "all") -> torch.Tensor:
        """Append ids; returns the logits at their positions, [len(ids), V] ("last": [1, V])."""
        if self.active is not None:
            logits = self.active.feed(ids)
            return logits[-1:] if rows == "last" else logits
        self._own()
        logits = self.engine.run(list(ids), len(self.ids), rows)
        self.ids.extend(ids)
        return logits

    def _own(self) -> None:
        if self.engine.owner is not self:  # another cache of this model wrote over ours
            self.engine.owner = self
            if self.ids:
                self.engine.run(self.ids, 0, "last")

    @property
    def tree_tokens(self) -> int:
        """The most tokens `feed_argmax` takes with a tree of drafts now (its largest verify
        step); 0 where it takes none (no static shapes, or a forward not this engine's)."""
        engine = self.engine
        if self.active is not None or not engine.static_shapes:
            return 0
        return max((b for b in engine.buckets if b <= TREE_TOKENS), default=0)

    def feed_argmax(self, ids: list[int], tree: tuple | None = None) -> list[int]:
        """Append ids; returns the argmax token at each of their positions (greedy decoding;
        `StaticModel.run_argmax`). With a tree (depths, visibility bits) the ids are its
        nodes in cache order; the caller rolls back to a row of them afterwards."""
        if self.active is not None:
            if tree is not None:
                raise ValueError("a tree of drafts needs the static forward")
            return self.active.feed_argmax(ids)
        self._own()
        best = self.engine.run_argmax(list(ids), len(self.ids), tree)
        self.ids.extend(ids)
        return best

    def prefill(self, prompt: list[int]) -> tuple[torch.Tensor, int]:
        """Logits after the whole prompt, and how many prompt tokens were reused from the cache."""
        model = self.engine.model_ref()
        if model is not None and _observed(model):
            self.active = self.hf = self.hf or PrefixKV(model)
            return self.hf.prefill(prompt)
        self.active = None
        self.engine.check_weights()
        reuse = 0
        if self.engine.owner is self:
            reuse = max(0, min(common_prefix(self.ids, prompt), len(prompt) - 1))
        self.rollback(reuse)
        if self.engine.owner is not self:
            self.engine.owner = self  # nothing of ours to restore: start over
        return self.feed(prompt[reuse:], rows="last")[-1], reuse


_ENGINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def engine_for(model, **options) -> StaticModel:
    """The model's shared `StaticModel` (made on first use; options apply then)."""
    engine = _ENGINES.get(model)
    if engine is None:
        engine = _ENGINES[model] = StaticModel(model, **options)
    return engine


MODE_OPTIONS = {  # SPECULATIVE_STATIC's words
    "eager": {"graphs": False},  # no CUDA graphs
    "compile": {"compile_steps": True},  # compiled decode/verify steps
    "attend": {"attend_buckets": True},  # see ATTEND_BUCKETS
    "stack": {"stack_mlp": True},  # see STACK_MLP
    "nokernels": {"kernels": False},  # the torch forward on CUDA too (see speculative.kernels)
}


def kv_cache(model, static: bool | None = None):
    """A `StaticKV` where the static path supports the model, else a `PrefixKV`.

    static: None decides by the model and `SPECULATIVE_STATIC` (0: never; else a comma-separated
    list of MODE_OPTIONS, e.g. `attend,stack`); True insists (ValueError when unsupported);
    False gives `PrefixKV`.
    """
    mode = os.environ.get("SPECULATIVE_STATIC", "1").strip().lower()
    if static is False or (static is None and mode in ("0", "false", "off", "no")):
        return PrefixKV(model)
    if model in _ENGINES:
        return StaticKV(_ENGINES[model])
    options = {k: v for part in mode.split(",") for k, v in MODE_OPTIONS.get(part.strip(), {}).items()}
    if static is None:
        reason = unsupported_reason(model)
        if reason:
            log.info("static KV cache unsupported (%s): HF cache instead", reason)
            return PrefixKV(model)
    try:
        return StaticKV(engine_for(model, **options))
    except Exception as exc:
        if static:
            raise
        log.warning("static KV cache failed to start (%s): HF cache instead", exc)
        return PrefixKV(model)


def batch_cache(model) -> StaticBatch | None:
    """The model's `StaticBatch` where the single path would use `StaticKV` (the same checks
    as `kv_cache`, and the model's forward not observed), else None."""
    mode = os.environ.get("SPECULATIVE_STATIC", "1").strip().lower()
    if mode in ("0", "false", "off", "no") or _observed(model):
        return None
    kv = kv_cache(model)
    if not isinstance(kv, StaticKV):
        return None
    kv.engine.check_weights()  # the weights moved: a new batch cache over the new ones
    return kv.engine.rows()
