"""Tiny, randomly initialised checkpoints of every model family the loader supports, built in a
folder with `save_pretrained`, with tokenizers that carry each family's real special tokens
(including which of them the real tokenizer marks special and which it does not).

Nothing here touches a model hub. LLaDA and Dream ship their own modelling code in the real
checkpoints (config.json `auto_map`, loaded only with trust_remote_code); the builders here do
the same, with a small configuration_*.py / modeling_*.py written into the model folder.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

CODE = [
    "def add(a, b):\n    return a + b\n",
    "import os\n\n\ndef walk(root):\n    for name in os.listdir(root):\n        yield name\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
    "for i in range(10):\n    print(i * i)\n",
    "const total = values.reduce((a, b) => a + b, 0);\n",
    "# the full-width bar and the word marker of some control tokens: ｜ ▁\n",
    string.printable,
] * 3

# (content, special) as the real tokenizers have them: Qwen2.5-Coder and DeepSeek-Coder ship
# their FIM tokens as added tokens that are NOT special.
QWEN_TOKENS = [("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
               ("<tool_call>", False), ("</tool_call>", False),
               ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False),
               ("<|fim_pad|>", False), ("<|repo_name|>", False), ("<|file_sep|>", False)]
STARCODER_TOKENS = [("<|endoftext|>", True), ("<fim_prefix>", True), ("<fim_middle>", True),
                    ("<fim_suffix>", True), ("<fim_pad>", True), ("<repo_name>", True),
                    ("<file_sep>", True), ("<issue_start>", True)]
DEEPSEEK_TOKENS = [("<｜begin▁of▁sentence｜>", True), ("<｜end▁of▁sentence｜>", True),
                   ("<｜fim▁hole｜>", False), ("<｜fim▁begin｜>", False), ("<｜fim▁end｜>", False),
                   ("<pad>", False), ("<|User|>", False), ("<|Assistant|>", False),
                   ("<|EOT|>", True)]
CODELLAMA_TOKENS = ["▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"]
PLAIN_TOKENS = [("<|endoftext|>", True)]
# Dream's tokenizer is Qwen2.5's plus "<|beginoftext|>" and "<|mask|>".
DREAM_TOKENS = [*QWEN_TOKENS, ("<|beginoftext|>", True), ("<|mask|>", True)]

AR_FAMILIES = ("infill", "qwen", "starcoder", "deepseek", "codellama")

# What each family's tokens should give the loader: the detected format, and stop tokens.
EXPECTED_STOPS = {
    "infill": ["<|end|>", "<|pad|>", "<|mask|>", "<|prefix|>", "<|suffix|>", "<|middle|>"],
    "qwen": ["<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|im_end|>",
             "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<tool_call>"],
    "starcoder": ["<|endoftext|>", "<fim_pad>", "<file_sep>", "<fim_prefix>", "<fim_middle>",
                  "<fim_suffix>", "<issue_start>"],
    "deepseek": ["<|EOT|>", "<｜end▁of▁sentence｜>", "<｜fim▁begin｜>", "<｜fim▁hole｜>",
                 "<｜fim▁end｜>", "<|User|>", "<pad>"],
    "codellama": ["▁<EOT>", "</s>", "▁<PRE>", "▁<SUF>", "▁<MID>"],
}


def _byte_level_bpe(vocab_size: int = 320) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CODE, trainer=trainer)
    return tok


def _add(tok: Tokenizer, tokens: list[tuple[str, bool]]) -> None:
    for content, special in tokens:
        token = AddedToken(content, special=special, normalized=False)
        (tok.add_special_tokens if special else tok.add_tokens)([token])


def _set_tokenizer_class(folder: Path, name: str) -> None:
    """The class name the real checkpoint's tokenizer_config.json declares."""
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["tokenizer_class"] = name
    path.write_text(json.dumps(config, indent=1))


def byte_level_tokenizer(tokens: list[tuple[str, bool]], bos: str | None = None,
                         **special) -> PreTrainedTokenizerFast:
    tok = _byte_level_bpe()
    _add(tok, tokens)
    if bos is not None:  # DeepSeek-Coder starts every sequence with BOS
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tok.token_to_id(bos))])
        special["bos_token"] = bos
    return PreTrainedTokenizerFast(tokenizer_object=tok, clean_up_tokenization_spaces=False,
                                   **special)


def sentencepiece_tokenizer(fim_tokens: list[str]) -> PreTrainedTokenizerFast:
    """Llama-style: BPE over "▁"-marked text with a dummy prefix space, BOS added, and CodeLlama's
    "▁<PRE>"-spelled FIM tokens, as transformers builds CodeLlamaTokenizer."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True))
    # Trained on words, as SentencePiece is; used on the whole text, as transformers does.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first",
                                                 split=True)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<unk>", "<s>", "</s>"],
                                  show_progress=False)
    tok.train_from_iterator(CODE, trainer=trainer)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first",
                                                 split=False)
    _add(tok, [(t, True) for t in fim_tokens])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", additional_special_tokens=fim_tokens,
                                   clean_up_tokenization_spaces=False)


def infill_tokenizer() -> PreTrainedTokenizerFast:
    """The project's own tokenizer, made by the project's own training code."""
    from infill.train.tokenizer import train_tokenizer

    return train_tokenizer(CODE, vocab_size=320)


def family_tokenizer(family: str):
    """(tokenizer, the tokenizer_class the real checkpoint declares or None)."""
    if family == "infill":
        return infill_tokenizer(), None
    if family == "qwen":
        return byte_level_tokenizer(QWEN_TOKENS, eos_token="<|endoftext|>",
                                    pad_token="<|endoftext|>"), "Qwen2Tokenizer"
    if family == "starcoder":
        return byte_level_tokenizer(STARCODER_TOKENS, eos_token="<|endoftext|>",
                                    unk_token="<|endoftext|>"), "GPT2Tokenizer"
    if family == "deepseek":
        return byte_level_tokenizer(DEEPSEEK_TOKENS, bos="<｜begin▁of▁sentence｜>",
                                    eos_token="<｜end▁of▁sentence｜>",
                                    pad_token="<｜end▁of▁sentence｜>"), "LlamaTokenizerFast"
    if family == "codellama":
        return sentencepiece_tokenizer(CODELLAMA_TOKENS), "CodeLlamaTokenizer"
    if family == "plain":  # no FIM tokens at all
        return byte_level_tokenizer(PLAIN_TOKENS, eos_token="<|endoftext|>"), None
    raise ValueError(family)


def _padded(n: int) -> int:
    """Real checkpoints pad the embedding past the tokenizer (Qwen: 151936 > 151665)."""
    return (n + 15) // 16 * 16


def make_ar(folder: Path, family: str) -> Path:
    """A tiny AR model of the family's architecture and its tokenizer, saved in folder."""
    import torch
    from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM,
                              Starcoder2Config, Starcoder2ForCausalLM)

    tokenizer, tokenizer_class = family_tokenizer(family)
    tokenizer.save_pretrained(str(folder))
    if tokenizer_class:
        _set_tokenizer_class(folder, tokenizer_class)
    eos, bos = tokenizer.eos_token_id, tokenizer.bos_token_id
    shape = dict(vocab_size=_padded(len(tokenizer) + 1), hidden_size=16, intermediate_size=32,
                 num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                 max_position_embeddings=256, bos_token_id=bos, eos_token_id=eos,
                 pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    if family == "qwen":
        model = Qwen2ForCausalLM(Qwen2Config(**shape, tie_word_embeddings=True))
    elif family == "starcoder":
        model = Starcoder2ForCausalLM(Starcoder2Config(**shape))
    else:  # deepseek, codellama, infill, plain: Llama
        model = LlamaForCausalLM(LlamaConfig(**shape))
    model.save_pretrained(str(folder))
    return folder


def make_infill_diffusion(folder: Path) -> Path:
    import torch
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    tokenizer = infill_tokenizer()
    tokenizer.save_pretrained(str(folder))
    end, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    torch.manual_seed(0)
    model = ModernBertForMaskedLM(ModernBertConfig(
        vocab_size=_padded(len(tokenizer)), hidden_size=16, intermediate_size=32,
        num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=256,
        pad_token_id=pad, eos_token_id=end, bos_token_id=end, cls_token_id=end, sep_token_id=end))
    model.save_pretrained(str(folder))
    return folder


# The custom code a LLaDA / Dream checkpoint ships, at toy scale: their own config class (an
# unknown model_type) and a bidirectional model returning logits over the vocabulary.
_CUSTOM_CONFIG = '''from transformers import ModernBertConfig


class {config}(ModernBertConfig):
    model_type = "{model_type}"
'''
_CUSTOM_MODEL = '''from transformers import ModernBertForMaskedLM

from .{config_module} import {config}


class {model}(ModernBertForMaskedLM):
    config_class = {config}
'''
_CUSTOM_TOKENIZER = '''from transformers import Qwen2Tokenizer


class DreamTokenizer(Qwen2Tokenizer):
    pass
'''

LLADA_MASK = 126336
LLADA_VOCAB = 126464
LLADA_SPECIALS = {126080: "<|startoftext|>", 126081: "<|endoftext|>", 126336: "<|mdm_mask|>",
                  126346: "<|start_header_id|>", 126347: "<|end_header_id|>", 126348: "<|eot_id|>"}


def _custom_code_model(folder: Path, name: str, model_type: str, config: str, model: str,
                       vocab: int, hidden: int, special_ids: dict, auto_map: dict,
                       extra: dict) -> None:
    import torch
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    torch.manual_seed(0)
    standard = ModernBertForMaskedLM(ModernBertConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=256, **special_ids))
    standard.save_pretrained(str(folder))
    (folder / f"configuration_{name}.py").write_text(
        _CUSTOM_CONFIG.format(config=config, model_type=model_type))
    (folder / f"modeling_{name}.py").write_text(_CUSTOM_MODEL.format(
        config_module=f"configuration_{name}", config=config, model=model))
    path = folder / "config.json"
    data = json.loads(path.read_text())
    data.update(model_type=model_type, architectures=[model], auto_map=auto_map, **extra)
    path.write_text(json.dumps(data, indent=1))


def make_llada(folder: Path) -> Path:
    """LLaDA-shaped: model_type "llada", custom code, vocab 126464 with the mask at 126336."""
    base = _byte_level_bpe()
    vocab = dict(base.get_vocab())
    merges = json.loads(base.to_str())["model"]["merges"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
    first_special = min(LLADA_SPECIALS)
    for i in range(len(vocab), first_special):  # stand-ins for the rest of its BPE vocabulary
        vocab[f"piece{i}"] = i
    specials = [LLADA_SPECIALS.get(i, f"<|reserved_token_{i}|>")
                for i in range(first_special, LLADA_VOCAB)]
    vocab.update((t, first_special + k) for k, t in enumerate(specials))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|startoftext|>",
                                        eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                        clean_up_tokenization_spaces=False)
    tokenizer.save_pretrained(str(folder))
    _custom_code_model(
        folder, "llada", "llada", "LLaDAConfig", "LLaDAModelLM", vocab=LLADA_VOCAB, hidden=8,
        special_ids=dict(pad_token_id=126081, eos_token_id=126081, bos_token_id=126080,
                         cls_token_id=126080, sep_token_id=126081),
        auto_map={"AutoConfig": "configuration_llada.LLaDAConfig",
                  "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
                  "AutoModel": "modeling_llada.LLaDAModelLM"},
        extra={"mask_token_id": LLADA_MASK})
    return folder


def make_dream(folder: Path, custom_tokenizer: bool = True) -> Path:
    """Dream-shaped: model_type "Dream", custom code for the config, the model and (as the real
    checkpoint has it) the tokenizer, with "<|mask|>" as the mask token."""
    tok = _byte_level_bpe()
    _add(tok, DREAM_TOKENS)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|beginoftext|>",
                                        eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                        mask_token="<|mask|>", clean_up_tokenization_spaces=False)
    tokenizer.save_pretrained(str(folder))
    if custom_tokenizer:
        (folder / "tokenization_dream.py").write_text(_CUSTOM_TOKENIZER)
        path = folder / "tokenizer_config.json"
        data = json.loads(path.read_text())
        data.update(tokenizer_class="DreamTokenizer",
                    auto_map={"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]})
        path.write_text(json.dumps(data, indent=1))
    end = tokenizer.eos_token_id
    _custom_code_model(
        folder, "dream", "Dream", "DreamConfig", "DreamModel", vocab=_padded(len(tokenizer)),
        hidden=16, special_ids=dict(pad_token_id=end, eos_token_id=end, bos_token_id=end,
                                    cls_token_id=end, sep_token_id=end),
        auto_map={"AutoConfig": "configuration_dream.DreamConfig",
                  "AutoModel": "modeling_dream.DreamModel"},
        extra={"mask_token_id": tokenizer.mask_token_id})
    return folder
