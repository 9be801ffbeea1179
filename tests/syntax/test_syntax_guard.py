"""guard / guard_candidates: the engines' entry point, and that it never raises."""

import pytest
from syntax_cases import CASES, broken_far_away, with_header

from infill.syntax import GuardResult, guard, guard_candidates


@pytest.mark.parametrize("case", CASES, ids=[c.language for c in CASES])
def test_guard_per_language(case):
    prefix = with_header(case, case.prefix)
    ok = guard(prefix, case.suffix, case.expression, case.language)
    assert ok == GuardResult(case.expression, True, False, ok.reason)
    # A second line that breaks the document is dropped; the first stays.
    cut = guard(prefix, case.suffix, case.expression + "\n((", case.language, multiline=True)
    assert (cut.text, cut.valid, cut.truncated) == (case.expression, True, True)
    # Nothing valid at all.
    bad = guard(prefix, case.suffix, "(" + case.expression, case.language)
    assert (bad.text, bad.valid, bad.truncated) == ("", False, True)


@pytest.mark.parametrize("case", CASES, ids=[c.language for c in CASES])
def test_guard_on_a_document_broken_far_away(case):
    result = guard(broken_far_away(case), case.suffix, case.expression, case.language)
    assert (result.text, result.valid) == (case.expression, True)


@pytest.mark.parametrize("case", CASES, ids=[c.language for c in CASES])
def test_guard_drops_the_brackets_the_suffix_provides(case):
    prefix = with_header(case, case.call_prefix)
    closing = case.call_suffix.split("\n")[0]
    result = guard(prefix, case.call_suffix, "2" + closing, case.language)
    assert (result.text, result.valid, result.truncated) == ("2", True, True)


def test_guard_language_from_the_path():
    assert guard("x = ", "\n", "foo(1)", None, path="/src/a.py").reason.startswith("single-line, python")
    # An explicit languageId wins over the extension; an unknown one defers to it.
    assert "javascript" in guard("x = ", "\n", "1", "javascript", path="a.py").reason
    assert "python" in guard("x = ", "\n", "1", "plaintext", path="a.py").reason


def test_guard_python_multiline_body():
    prefix = "def mean(xs):\n    "
    suffix = "\n\nprint(mean([1, 2]))\n"
    completion = "total = sum(xs)\n    return total / len(xs)\n\n\ndef median(xs):\n    pass\n"
    result = guard(prefix, suffix, completion, "python")
    assert result.text == "total = sum(xs)\n    return total / len(xs)"
    assert result.valid and result.truncated
    assert result.reason.startswith("multi-line")


def test_guard_javascript_completion_repeating_the_suffix():
    prefix = "function f(a) {\n  "
    suffix = "\n}\n"
    result = guard(prefix, suffix, "const b = a * 2;\n  return b;\n}\n\nfunction g() {}", "javascript")
    assert result.text == "const b = a * 2;\n  return b;"
    assert result.valid


def test_guard_multiline_argument_overrides_the_position_rule():
    prefix, suffix = "x = 1\n", "\ny = 2\n"  # a single-line position
    assert guard(prefix, suffix, "a = 1\nb = 2", "python").text == "a = 1"
    assert guard(prefix, suffix, "a = 1\nb = 2", "python", multiline=True).text == "a = 1\nb = 2"


def test_guard_unknown_language_passthrough():
    result = guard("say hello to ", "\n", "the world", "plaintext")
    assert result == GuardResult("the world", True, False, result.reason)
    assert "generic" in result.reason
    unbalanced = guard("(define x ", ")\n", "(+ 1 2", "scheme")
    assert not unbalanced.valid and unbalanced.text == ""
    balanced = guard("(define x ", ")\n", "(+ 1 2)", "scheme")
    assert balanced.valid and balanced.text == "(+ 1 2)"


def test_guard_unknown_language_dedent_stop():
    prefix = "section:\n  "
    completion = "item one\n  item two\nnext section:\n  item"
    result = guard(prefix, "\n", completion, None, multiline=True)
    assert result.text == "item one\n  item two"


def test_guard_empty_inputs():
    assert guard("", "", "", "python") == GuardResult("", False, False, "nothing left")
    assert guard("", "", "x = 1", "python").text == "x = 1"
    assert guard("x = ", "", "1", "python").text == "1"
    assert guard("", "\nprint(x)\n", "x = 1", "python").text == "x = 1"
    assert guard("", "", "   \n  ", "python").text == ""


def test_guard_nul_bytes():
    # A NUL in a completion means the model derailed: the completion ends there.
    result = guard("x = ", "\n", "\x00", "python")
    assert result == GuardResult("", False, True, result.reason)
    assert guard("x = ", "\n", "compute(1)\x00junk(", "python").text == "compute(1)"
    assert guard("a", "\x00", "b\x00c", None).text == "b"
    # NULs in the document itself are judged like any other pre-existing error.
    assert guard("x = 1\x00\ny = ", "\n", "2", "python").valid
    assert not guard("x = 1\x00\ny = ", "\n", "(2", "python").valid


def test_guard_unicode():
    prefix = "# 😀 你好\ndef greet():\n    return "
    result = guard(prefix, "\n", '"héllo 😀 世界"', "python")
    assert result == GuardResult('"héllo 😀 世界"', True, False, result.reason)
    assert not guard(prefix, "\n", '"héllo 😀', "python").valid
    # Lone surrogates (as from a bad UTF-16 decode) do not crash anything.
    assert guard("x = '\ud800", "'\n", "\udc00abc", "python").text in ("", "\udc00abc")


def test_guard_never_raises_on_odd_inputs():
    odd = [None, b"x = (", 12, "\r\n", "\x00" * 10, "😀" * 1000]
    for prefix in odd:
        for completion in odd:
            result = guard(prefix, "\n", completion, "python")
            assert isinstance(result, GuardResult)
    assert isinstance(guard("x", "y", "z", 42), GuardResult)
    assert isinstance(guard("x", "y", "z", "python", path=object()), GuardResult)


def test_guard_falls_back_to_generic_rules_when_the_grammar_fails(monkeypatch):
    from infill.syntax import languages

    def broken_parse(self, source, old_tree=None):
        raise RuntimeError("grammar exploded")

    monkeypatch.setattr(languages.Language, "parse", broken_parse)
    from infill.syntax import validity

    monkeypatch.setattr(validity, "_cache", type(validity._cache)())
    result = guard("x = foo(", "\n", "1, 2)", "python", multiline=False)
    assert result.valid and result.text == "1, 2)"
    assert "generic rules after RuntimeError: grammar exploded" in result.reason
    assert not guard("x = foo(", "\n", "1, (2", "python", multiline=False).valid


def test_guard_huge_inputs():
    prefix = "x = 1\n" * 100_000 + "y = "
    result = guard(prefix, "\n" + "z = 2\n" * 10_000, "compute(1)\n" * 1000, "python", multiline=True)
    assert result.valid and result.text.startswith("compute(1)")
    assert result.text.count("\n") < 256


def test_guard_candidates_ranks_valid_first_stably():
    results = guard_candidates("x = ", "\n", ["(1", "2", "[3", "4"], "python")
    assert [r.text for r in results] == ["2", "4", "", ""]
    assert [r.valid for r in results] == [True, True, False, False]
    assert guard_candidates("x = ", "\n", [], "python") == []
