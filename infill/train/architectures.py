"""Shapes of the shipped models: standard transformers architectures, so a shipped model and a
real checkpoint take the same code path (Llama for AR, ModernBERT, a bidirectional encoder, for
masked diffusion).

The sizes fit the 48 MiB budget for all weights in bf16: target ~14.1M parameters, draft ~1.6M
(about 9x fewer FLOPs per token), diffusion ~8.9M.
"""

from __future__ import annotations

from transformers import LlamaConfig, LlamaForCausalLM, ModernBertConfig, ModernBertForMaskedLM

from infill.train.data import SpecialIds

AR_SHAPES = {
    "target": dict(hidden_size=384, intermediate_size=1024, num_hidden_layers=7,
                   num_attention_heads=6, num_key_value_heads=2),
    # ~26.7M: twice the target, for shipping in int8 (`infill train export --int8`)
    "target_l": dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=8,
                     num_attention_heads=8, num_key_value_heads=2),
    "draft": dict(hidden_size=128, intermediate_size=384, num_hidden_layers=3,
                  num_attention_heads=2, num_key_value_heads=1),
    "tiny": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=2, num_key_value_heads=1),
}
DIFFUSION_SHAPES = {
    "diffusion": dict(hidden_size=320, intermediate_size=864, num_hidden_layers=5,
                      num_attention_heads=5),
    "tiny": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
}


def ar_model(shape: str, vocab_size: int, ids: SpecialIds, max_positions: int = 4096):
    config = LlamaConfig(
        vocab_size=vocab_size,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=ids.end,
        pad_token_id=ids.pad,
        rope_theta=10000.0,
        **AR_SHAPES[shape],
    )
    return LlamaForCausalLM(config)


def diffusion_model(shape: str, vocab_size: int, ids: SpecialIds, max_positions: int = 4096):
    layers = DIFFUSION_SHAPES[shape]["num_hidden_layers"]
    config = ModernBertConfig(
        vocab_size=vocab_size,
        max_position_embeddings=max_positions,
        pad_token_id=ids.pad,
        eos_token_id=ids.end,
        bos_token_id=ids.prefix,
        cls_token_id=ids.prefix,
        sep_token_id=ids.end,
        mask_token_id=ids.mask,
        # Every layer attends globally: a gap must see the whole prefix and suffix.
        layer_types=["full_attention"] * layers,
        global_attn_every_n_layers=1,
        reference_compile=False,
        tie_word_embeddings=True,
        **DIFFUSION_SHAPES[shape],
    )
    return ModernBertForMaskedLM(config)


def parameter_count(model) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
