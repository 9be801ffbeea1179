"""FIM prompt formats: the exact prompt of each family, its token ids with a tokenizer that
carries the family's real special tokens, injection safety, detection and stop tokens."""

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for extra in (HERE.parents[1], HERE.parent / "models"):  # the repo; the tiny-checkpoint builders
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import tiny_checkpoints as tiny  # noqa: E402
from speculative.fim import (FORMATS, FimFormat, control_token_ids, detect_format,  # noqa: E402
                             stop_ids)

PREFIX = "def add(a, b):\n    return "
SUFFIX = "\n\n\nprint(add(1, 2))\n"

EXPECTED_TEXT = {
    "qwen": "<|fim_prefix|>{p}<|fim_suffix|>{s}<|fim_middle|>",
    "starcoder": "<fim_prefix>{p}<fim_suffix>{s}<fim_middle>",
    "deepseek": "<｜fim▁begin｜>{p}<｜fim▁hole｜>{s}<｜fim▁end｜>",
    "codellama": "<PRE> {p} <SUF>{s} <MID>",
    "infill": "<|prefix|>{p}<|suffix|>{s}<|middle|>",
}

# Every control-token spelling of every family, for injection tests.
ALL_CONTROL_TEXT = sorted({t for f in FORMATS.values() for t in (f.prefix_token, f.suffix_token,
                                                                    f.middle_token, *f.stop_tokens)}
                          | {"▁<PRE>", "▁<MID>", "<|User|>", "<tool_call>", "<pad>", "<s>",
                             "<|im_start|>", "<|mask|>", "<｜begin▁of▁sentence｜>"})


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """family -> its tokenizer, saved and loaded back as the project loads a checkpoint's."""
    from infill.models.loading import load_tokenizer

    loaded = {}
    for family in (*tiny.AR_FAMILIES, "plain"):
        folder = tmp_path_factory.mktemp(f"tok_{family}")
        tok, cls = tiny.family_tokenizer(family)
        tok.save_pretrained(str(folder))
        if cls:
            tiny._set_tokenizer_class(folder, cls)
        model_type = {"qwen": "qwen2", "starcoder": "starcoder2"}.get(family, "llama")
        (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
        loaded[family] = load_tokenizer(folder)
    # The brief's literal CodeLlama spelling ("<PRE>" rather than SentencePiece's "▁<PRE>"),
    # on a byte-level tokenizer.
    loaded["codellama-literal"] = tiny.byte_level_tokenizer(
        [("</s>", True), ("<PRE>", True), ("<SUF>", True), ("<MID>", True), ("<EOT>", True)],
        eos_token="</s>")
    return loaded


def _ids(tok, *tokens):
    return [tok.convert_tokens_to_ids(t) for t in tokens]


@pytest.mark.parametrize("family", EXPECTED_TEXT)
def test_prompt_text(family):
    fmt = FORMATS[family]
    assert fmt.prompt_text(PREFIX, SUFFIX) == EXPECTED_TEXT[family].format(p=PREFIX, s=SUFFIX)
    assert fmt.prompt_text("", "") == EXPECTED_TEXT[family].format(p="", s="")


@pytest.mark.parametrize("family", ["infill", "qwen", "starcoder"])
def test_prompt_ids_are_the_control_ids_around_the_text(tokenizers, family):
    tok, fmt = tokenizers[family], FORMATS[family]
    text = lambda s: tok.encode(s, add_special_tokens=False)
    pre, suf, mid = _ids(tok, fmt.prefix_token, fmt.suffix_token, fmt.middle_token)
    assert fmt.prompt_ids(tok, PREFIX, SUFFIX) == [pre, *text(PREFIX), suf, *text(SUFFIX), mid]
    assert fmt.prompt_ids(tok, "", "") == [pre, suf, mid]


def test_deepseek_prompt_starts_with_bos(tokenizers):
    """DeepSeek-Coder's reference FIM code runs tokenizer(prompt), which adds BOS."""
    tok, fmt = tokenizers["deepseek"], FORMATS["deepseek"]
    text = lambda s: tok.encode(s, add_special_tokens=False)
    pre, suf, mid = _ids(tok, "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>")
    bos = tok.convert_tokens_to_ids("<｜begin▁of▁sentence｜>")
    assert tok.bos_token_id == bos
    assert fmt.prompt_ids(tok, PREFIX, SUFFIX) == [bos, pre, *text(PREFIX), suf, *text(SUFFIX), mid]


def test_codellama_literal_tokens(tokenizers):
    tok, fmt = tokenizers["codellama-literal"], FORMATS["codellama"]
    text = lambda s: tok.encode(s, add_special_tokens=False)
    pre, suf, mid = _ids(tok, "<PRE>", "<SUF>", "<MID>")
    assert fmt.prompt_ids(tok, PREFIX, SUFFIX) == [pre, *text(f" {PREFIX} "), suf,
                                                   *text(f"{SUFFIX} "), mid]
    assert tok.decode(fmt.prompt_ids(tok, PREFIX, SUFFIX)) == fmt.prompt_text(PREFIX, SUFFIX)


@pytest.mark.parametrize("prefix,suffix", [(PREFIX, SUFFIX), ("x = 1", " + y"), ("", "z"),
                                           ("  indented", "  tail  "), ("a", "")])
def test_codellama_sentencepiece_tokens(tokenizers, prefix, suffix):
    """The real CodeLlama vocabulary spells its tokens "▁<PRE>" (the "▁" is the space written
    before the token) and adds a dummy space before encoded text. Meta's reference:
    [BOS, ▁<PRE>] + encode(prefix) + [▁<SUF>] + encode_without_leading_space(suffix) + [▁<MID>],
    that is BOS + " <PRE> {prefix} <SUF>{suffix} <MID>"."""
    tok, fmt = tokenizers["codellama"], FORMATS["codellama"]
    assert type(tok).__name__ == "CodeLlamaTokenizer"
    ids = fmt.prompt_ids(tok, prefix, suffix)
    pre, suf, mid = _ids(tok, "▁<PRE>", "▁<SUF>", "▁<MID>")
    assert ids[:2] == [tok.bos_token_id, pre] and ids[-1] == mid and ids.count(suf) == 1
    if not prefix.startswith(" "):  # (where the tokenizer's own dummy space is SentencePiece's)
        assert ids[2:ids.index(suf)] == tok.encode(prefix, add_special_tokens=False)
    pieces = tok.convert_ids_to_tokens(ids[1:])
    # An empty prefix encodes to nothing: no dummy space.
    expected = f" <PRE> {prefix} <SUF>{suffix} <MID>" if prefix else f" <PRE> <SUF>{suffix} <MID>"
    assert "".join(pieces).replace("▁", " ") == expected


@pytest.mark.parametrize("family", [*tiny.AR_FAMILIES, "codellama-literal"])
@pytest.mark.parametrize("where", ["prefix", "suffix"])
def test_user_text_never_becomes_a_control_token(tokenizers, family, where):
    """Qwen2.5-Coder and DeepSeek-Coder mark their FIM tokens not special, so
    split_special_tokens alone would let a file that contains "<|fim_prefix|>" inject one."""
    tok = tokenizers[family]
    fmt = FORMATS[family.split("-")[0]]
    hostile = "x = '" + "' + '".join(ALL_CONTROL_TEXT) + "'\n"
    prefix, suffix = (hostile, SUFFIX) if where == "prefix" else (PREFIX, hostile)
    ids = fmt.prompt_ids(tok, prefix, suffix)
    pre, suf, mid = fmt.control_ids(tok)
    controls = control_token_ids(tok) | {pre, suf, mid, tok.bos_token_id} - {None}
    used = [i for i in ids if i in controls]
    assert used == ([ids[0]] if ids[0] == tok.bos_token_id else []) + [pre, suf, mid]
    # The hostile text is all there, as text.
    segment = ids[ids.index(pre) + 1:ids.index(suf)] if where == "prefix" else \
        ids[ids.index(suf) + 1:ids.index(mid)]
    plain = lambda s: s.replace("▁", " ").strip()
    assert plain(tok.decode(segment)) == plain(hostile)


@pytest.mark.parametrize("family", tiny.AR_FAMILIES)
def test_detect_format(tokenizers, family):
    assert detect_format(tokenizers[family]) is FORMATS[family]


def test_detect_format_literal_codellama(tokenizers):
    assert detect_format(tokenizers["codellama-literal"]) is FORMATS["codellama"]


def test_detect_format_without_fim_tokens(tokenizers):
    assert detect_format(tokenizers["plain"]) is None
    assert FORMATS["qwen"].control_ids(tokenizers["plain"]) is None
    with pytest.raises(ValueError):
        FORMATS["qwen"].prompt_ids(tokenizers["plain"], "a", "b")


@pytest.mark.parametrize("family", tiny.AR_FAMILIES)
def test_stop_ids(tokenizers, family):
    tok, fmt = tokenizers[family], FORMATS[family]
    stops = stop_ids(tok, fmt)
    names = set(tok.convert_ids_to_tokens(sorted(stops)))
    assert set(tiny.EXPECTED_STOPS[family]) <= names
    assert tok.eos_token_id in stops
    assert set(tok.all_special_ids) <= stops
    assert {i for i, t in tok.added_tokens_decoder.items() if t.special} <= stops
    # Ordinary code tokens never stop a completion.
    assert not stops & set(tok.encode("def add(a, b):\n    return a + b", add_special_tokens=False))


def test_stop_ids_of_a_format_whose_stop_tokens_are_missing(tokenizers):
    tok = tokenizers["plain"]
    fmt = FimFormat("x", "<a>", "<b>", "<c>", ("<nope>",))
    assert stop_ids(tok, fmt) == {tok.eos_token_id}


def test_prompt_ids_is_stable_across_calls(tokenizers):
    """Its per-tokenizer measurements are cached; a tokenizer that grows is measured again."""
    tok = tokenizers["qwen"]
    first = FORMATS["qwen"].prompt_ids(tok, PREFIX, SUFFIX)
    assert FORMATS["qwen"].prompt_ids(tok, PREFIX, SUFFIX) == first
