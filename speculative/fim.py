"""Fill-in-the-middle prompt formats of the AR code model families, detected from tokenizers.

A format turns (prefix, suffix) into the prompt the model was trained on (prefix-suffix-middle
order) and names the tokens that end the middle. Prompts are built as token ids segment by
segment, and user text is always encoded as plain text, so a file that happens to contain
"<|fim_prefix|>" can never inject a control token. `split_special_tokens=True` is not enough
for that on its own: Qwen2.5-Coder and DeepSeek-Coder ship their FIM tokens as added tokens
that are *not* marked special, and the tokenizer matches those in any text.

Tokenizers differ in how they spell a control token and around it:
- CodeLlama's SentencePiece vocabulary has "▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>": the "▁" is
  the space its reference prompt writes before each control token, and its tokenizer adds a
  dummy "▁" in front of any text it encodes; both are accounted for here.
- Tokenizers that begin every sequence with BOS (CodeLlama, DeepSeek-Coder) get BOS in front of
  the prompt, as their reference FIM code (`tokenizer(prompt)`) has it.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass

SPIECE = "▁"  # SentencePiece's word-boundary marker


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

    def control_ids(self, tokenizer) -> tuple[int, int, int] | None:
        """(prefix, suffix, middle) ids in this tokenizer, or None if it lacks one of them."""
        ids = tuple(token_id(tokenizer, t) for t in
                    (self.prefix_token, self.suffix_token, self.middle_token))
        return None if None in ids else ids

    def prompt_ids(self, tokenizer, prefix: str, suffix: str) -> list[int]:
        ids = self.control_ids(tokenizer)
        if ids is None:
            raise ValueError(f"the tokenizer has no {self.name} FIM tokens "
                             f"({self.prefix_token} {self.suffix_token} {self.middle_token})")
        pre, suf, mid = ids
        # A "▁"-spelled control token carries the space written before it.
        before_suffix = self.before_suffix_token
        if _spelling(tokenizer, suf) == SPIECE + self.suffix_token:
            before_suffix = before_suffix.removesuffix(" ")
        before_middle = self.before_middle_token
        if _spelling(tokenizer, mid) == SPIECE + self.middle_token:
            before_middle = before_middle.removesuffix(" ")
        profile = _profile(tokenizer)
        head = self.after_prefix_token + prefix + before_suffix
        if profile.dummy_prefix and not prefix and not before_suffix:
            # CodeLlama's " " after <PRE> is SentencePiece's dummy prefix of the encoded
            # prefix, and an empty prefix encodes to nothing (Meta's infilling_prompt_tokens).
            head = ""
        return (profile.bos + [pre] + encode_text(tokenizer, head)
                + [suf] + encode_text(tokenizer, suffix + before_middle) + [mid])


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


def token_id(tokenizer, token: str) -> int | None:
    """The id of a control token as written or in its SentencePiece spelling ("▁<PRE>")."""
    for spelling in (token, SPIECE + token):
        i = tokenizer.convert_tokens_to_ids(spelling)
        if isinstance(i, int) and _spelling(tokenizer, i) == spelling:
            return i
    return None


def _spelling(tokenizer, i: int) -> str | None:
    return tokenizer.convert_ids_to_tokens(i)


def detect_format(tokenizer) -> FimFormat | None:
    """The family whose FIM control tokens the tokenizer knows, or None."""
    vocab = tokenizer.get_vocab()

    def known(token: str) -> bool:
        return token in vocab or SPIECE + token in vocab

    for fmt in FORMATS.values():
        if all(known(t) for t in (fmt.prefix_token, fmt.suffix_token, fmt.middle_token)):
            return fmt
    return None


_CONTROL = re.compile(r"^<.+>$", re.S)


def control_token_ids(tokenizer) -> set[int]:
    """Every added token that is special, or that looks like a control token ("<|User|>",
    "<｜fim▁hole｜>", "<tool_call>") though the tokenizer does not mark it special."""
    ids = set()
    for i, tok in tokenizer.added_tokens_decoder.items():
        if tok.special or _CONTROL.match(tok.content.strip().removeprefix(SPIECE)):
            ids.add(i)
    return ids


def stop_ids(tokenizer, fmt: FimFormat) -> set[int]:
    """Every id that ends a middle: the format's stop tokens, EOS, and any other special or
    control token (a completion never shows a control token to the user)."""
    ids = {i for i in (token_id(tokenizer, t) for t in fmt.stop_tokens) if i is not None}
    ids.update(i for i in tokenizer.all_special_ids if i is not None)
    ids.update(control_token_ids(tokenizer))
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


@dataclass
class _Profile:
    size: int  # len(tokenizer) when measured: a tokenizer that grows is measured again
    bos: list[int]  # [bos] if the tokenizer starts every sequence with it, else []
    dummy_prefix: bool  # SentencePiece style: encode("a") gives "▁a"
    controls: frozenset[int]


_PROFILES: "weakref.WeakKeyDictionary[object, _Profile]" = weakref.WeakKeyDictionary()


def _profile(tokenizer) -> _Profile:
    try:
        cached = _PROFILES.get(tokenizer)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached is not None and cached.size == len(tokenizer):
        return cached
    plain = tokenizer.encode("a", add_special_tokens=False)
    full = tokenizer.encode("a", add_special_tokens=True)
    bos = tokenizer.bos_token_id
    starts_with_bos = bos is not None and full[:1] == [bos] and plain[:1] != [bos]
    first = tokenizer.convert_ids_to_tokens(plain[:1])
    profile = _Profile(len(tokenizer), [bos] if starts_with_bos else [],
                       bool(first) and isinstance(first[0], str) and first[0].startswith(SPIECE),
                       frozenset(control_token_ids(tokenizer)))
    try:
        _PROFILES[tokenizer] = profile
    except TypeError:
        pass
    return profile


def encode_text(tokenizer, text: str) -> list[int]:
    """Ids of exactly `text` as plain text: no BOS, no dummy leading space, and no control
    token, whatever the text contains."""
    if not text:
        return []
    profile = _profile(tokenizer)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if profile.dummy_prefix and backend is not None:
        # SentencePiece style (CodeLlama): the text as one piece, spaces as "▁", as the
        # reference infilling tokenizer encodes it.
        return [t.id for t in backend.model.tokenize(text.replace(" ", SPIECE))]
    ids = tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)
    if backend is None or not profile.controls.intersection(ids):
        return ids
    # The text spells a control token the tokenizer would match: run the tokenizer's own
    # pipeline without its added-token matching.
    if backend.normalizer is not None:
        text = backend.normalizer.normalize_str(text)
    pieces = (backend.pre_tokenizer.pre_tokenize_str(text) if backend.pre_tokenizer is not None
              else [(text, None)])
    return [t.id for piece, _ in pieces for t in backend.model.tokenize(piece)]
