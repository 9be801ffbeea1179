"""Fill-in-the-middle prompt formats of the AR code model families, detected from tokenizers.

A format turns (prefix, suffix) into the prompt the model was trained on (prefix-suffix-middle
order) and names the tokens that end the middle. Prompts are built as token ids segment by
segment, and user text is encoded with `split_special_tokens=True`, so a file that happens to
contain "<|fim_prefix|>" can never inject a control token.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FimFormat:
    name: str
    prefix_token: str
    suffix_token: str
    middle_token: str
    stop_tokens: tuple[str, ...]
    # Text placed between a control token and the user text, as the family's reference
    # prompt has it (CodeLlama: "<PRE> {prefix} <SUF>{suffix} <MID>").
    after_prefix_token: str = ""
    before_suffix_token: str = ""
    before_middle_token: str = ""

    def prompt_text(self, prefix: str, suffix: str) -> str:
        """The prompt as one string: what the family's documentation shows."""
        return (f"{self.prefix_token}{self.after_prefix_token}{prefix}{self.before_suffix_token}"
                f"{self.suffix_token}{suffix}{self.before_middle_token}{self.middle_token}")

    def prompt_ids(self, tokenizer, prefix: str, suffix: str) -> list[int]:
        def text(s: str) -> list[int]:
            if not s:
                return []
            return tokenizer.encode(s, add_special_tokens=False, split_special_tokens=True)

        def control(token: str) -> list[int]:
            return [tokenizer.convert_tokens_to_ids(token)]

        return (control(self.prefix_token) + text(self.after_prefix_token + prefix
                                                   + self.before_suffix_token)
                + control(self.suffix_token) + text(suffix + self.before_middle_token)
                + control(self.middle_token))


FORMATS = {
    "infill": FimFormat("infill", "<|prefix|>", "<|suffix|>", "<|middle|>", ("<|end|>",)),
    "qwen": FimFormat(
        "qwen", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
        ("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|im_end|>",
         "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
    ),
    "starcoder": FimFormat(
        "starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>",
        ("<|endoftext|>", "<file_sep>", "<fim_pad>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    ),
    "deepseek": FimFormat(
        "deepseek", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>",
        ("<|EOT|>", "<｜end▁of▁sentence｜>", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
    ),
    "codellama": FimFormat(
        "codellama", "<PRE>", "<SUF>", "<MID>", ("<EOT>", "</s>"),
        after_prefix_token=" ", before_suffix_token=" ", before_middle_token=" ",
    ),
}


def detect_format(tokenizer) -> FimFormat | None:
    """The family whose FIM control tokens the tokenizer knows, or None."""
    vocab = tokenizer.get_vocab()
    for fmt in FORMATS.values():
        if all(t in vocab for t in (fmt.prefix_token, fmt.suffix_token, fmt.middle_token)):
            return fmt
    return None


def stop_ids(tokenizer, fmt: FimFormat) -> set[int]:
    """Every id that ends a middle: the format's stop tokens, EOS, and any other special token
    (a completion never shows a control token to the user)."""
    vocab = tokenizer.get_vocab()
    ids = {vocab[t] for t in fmt.stop_tokens if t in vocab}
    ids.update(i for i in tokenizer.all_special_ids if i is not None)
    ids.update(i for i, tok in tokenizer.added_tokens_decoder.items() if tok.special)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
