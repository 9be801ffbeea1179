"""The one BPE code tokenizer that the shipped AR target, AR draft and diffusion model share."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

FIM_PREFIX = "<|prefix|>"
FIM_SUFFIX = "<|suffix|>"
FIM_MIDDLE = "<|middle|>"
END = "<|end|>"
PAD = "<|pad|>"
MASK = "<|mask|>"
# The order fixes the ids: 0..5, the same in every model made from this tokenizer.
SPECIAL_TOKENS = [END, PAD, MASK, FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8192) -> PreTrainedTokenizerFast:
    """Byte-level BPE, so any input (unicode, NUL bytes, other languages) round-trips."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return wrap(tok)


def wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=END,
        pad_token=PAD,
        mask_token=MASK,
        additional_special_tokens=[FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE],
        clean_up_tokenization_spaces=False,
        model_max_length=1 << 20,
    )


def save(tokenizer: PreTrainedTokenizerFast, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(directory))
