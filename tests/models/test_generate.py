"""End to end on each tiny family: load, build the FIM prompt / canvas, decode, return text that
never shows a control token."""

import pytest

import tiny_checkpoints as tiny
from infill import autoregressive
from infill.diffusion import engine as diffusion_engine
from infill.models.loading import load_ar, load_diffusion
from infill.request import InfillRequest
from speculative.fim import FORMATS, control_token_ids

PREFIX = "def add(a, b):\n    return "
SUFFIX = "\n\n\nprint(add(1, 2))\n"

CONTROL_TEXT = sorted({t for f in FORMATS.values()
                       for t in (f.prefix_token, f.suffix_token, f.middle_token, *f.stop_tokens)}
                      | {"<|mask|>", "<|pad|>", "<|mdm_mask|>", "<|eot_id|>", "<s>", "<unk>",
                         "<pad>", "<|User|>", "<tool_call>", "<FILL_ME>"})


def assert_clean(text, tokenizer):
    assert isinstance(text, str)
    shown = [t for t in CONTROL_TEXT if t in text]
    shown += [tokenizer.convert_ids_to_tokens(i) for i in control_token_ids(tokenizer)
              if tokenizer.convert_ids_to_tokens(i) in text]
    assert not shown, (text, shown)


@pytest.fixture(scope="module")
def ar_models(ar_folder):
    loaded = {}

    def get(family):
        if family not in loaded:
            loaded[family] = load_ar(ar_folder(family), device="cpu")
        return loaded[family]

    return get


@pytest.mark.parametrize("family", tiny.AR_FAMILIES)
def test_ar_generate(ar_models, family):
    ar = ar_models(family)
    request = InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_tokens=5, multiline=False)
    text, result = autoregressive.generate(ar, request, multiline=False)
    assert_clean(text, ar.tokenizer)
    assert "\n" not in text
    assert len(result.tokens) <= 5 and result.forwards >= 1
    assert not set(result.tokens) & ar.stop_ids
    # Greedy: the same text again (the decoder now reuses its cached prompt).
    again, _ = autoregressive.generate(ar, request, multiline=False)
    assert again == text


@pytest.mark.parametrize("family", ["qwen", "codellama"])
def test_ar_generate_sampled_and_seeded(ar_models, family):
    ar = ar_models(family)

    def run(seed):
        request = InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_tokens=5, multiline=False,
                                temperature=1.0, seed=seed)
        return autoregressive.generate(ar, request, multiline=False)[0]

    first = run(4)
    assert_clean(first, ar.tokenizer)
    assert run(4) == first


@pytest.mark.parametrize("family", tiny.AR_FAMILIES)
def test_ar_generate_on_hostile_text(ar_models, family):
    """A file that spells control tokens is just text to complete."""
    ar = ar_models(family)
    hostile = "s = '" + "".join(CONTROL_TEXT) + "'\n" + PREFIX
    request = InfillRequest(prefix=hostile, suffix=SUFFIX, max_tokens=5, multiline=False)
    text, _ = autoregressive.generate(ar, request, multiline=False)
    assert_clean(text, ar.tokenizer)


STOP_TEXTS = [
    ("x = compute(a)\n    y = x + 1\n    y = x + 1\n    return y\n", "\n\nprint(1)\n"),
    ("first()\nsecond()\nreturn z\n", "\n    return z\n"),  # runs into the suffix
    ("é = 'ü'  # ünïcode\r\n" + "line\n" * 20, ""),  # multi-byte text, \r\n, line limit
]


@pytest.mark.parametrize("family", tiny.AR_FAMILIES)
@pytest.mark.parametrize("multiline", [False, True])
def test_stop_rule_stops_where_the_whole_text_says(ar_models, family, multiline):
    """The rule decodes only at tokens that end a line, yet stops at exactly the token where
    cutting the whole decoded text first says stop."""
    from infill.context import cut_completion

    ar = ar_models(family)
    for text, suffix in STOP_TEXTS:
        tokens = ar.tokenizer.encode(text, add_special_tokens=False)
        rule = autoregressive.stop_rule(ar, suffix, multiline)
        fast = next((k for k in range(1, len(tokens) + 1) if rule(tokens[:k])), None)
        whole = next((k for k in range(1, len(tokens) + 1) if cut_completion(
            autoregressive.text_of(ar, tokens[:k]), suffix, multiline,
            autoregressive.MAX_LINES)[1]), None)
        assert fast == whole and whole is not None, (family, text)


@pytest.mark.parametrize("which", ["infill", "llada", "dream"])
def test_diffusion_generate(request, which):
    folder = request.getfixturevalue({"infill": "infill_diffusion"}.get(which, which))
    dm = load_diffusion(folder, device="cpu", trust_remote_code=which != "infill")
    req = InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_tokens=6, multiline=False)
    text, kept, forwards = diffusion_engine.generate(dm, req, multiline=False)
    assert_clean(text, dm.tokenizer)
    assert "\n" not in text
    assert 0 <= kept <= 6 and 1 <= forwards <= 6
