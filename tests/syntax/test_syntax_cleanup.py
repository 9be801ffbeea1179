"""truncate, cut_at_block_exit, drop_suffix_duplicates, is_multiline_position, rank."""

import pytest
from syntax_cases import CASES, broken_far_away, with_header

from infill.syntax import (
    cut_at_block_exit,
    drop_suffix_duplicates,
    is_multiline_position,
    language_for,
    rank,
    truncate,
)

python = language_for("python")
js = language_for("javascript")


# -- truncate ---------------------------------------------------------------------------------


def test_truncate_single_line_keeps_the_first_line_only():
    assert truncate("x = ", "compute(1)\ny = 2\n", "\n", python, multiline=False) == "compute(1)"


def test_truncate_single_line_invalid_line_gives_empty():
    assert truncate("x = ", "compute(1\ny = 2)\n", "\n", python, multiline=False) == ""


def test_truncate_multiline_drops_trailing_lines_until_valid():
    prefix, suffix = "def total(xs):\n    ", "\n"
    completion = "t = 0\n    for x in xs:\n        t += x\n    return sum(t"
    assert truncate(prefix, completion, suffix, python, multiline=True) == (
        "t = 0\n    for x in xs:\n        t += x"
    )


def test_truncate_does_not_stop_after_a_block_header():
    # Cut by max tokens right after `for ...:`: the header without a body is not a complete unit.
    prefix, suffix = "def total(xs):\n    ", "\n"
    assert truncate(prefix, "t = 0\n    for x in xs:", suffix, python, multiline=True) == "t = 0"


def test_truncate_stops_at_a_dedent_out_of_the_block():
    prefix, suffix = "def add(a, b):\n    ", "\n"
    completion = "s = a + b\n    return s\n\nprint(add(1, 2))\n"
    assert truncate(prefix, completion, suffix, python, multiline=True) == "s = a + b\n    return s"


def test_truncate_returns_empty_when_nothing_is_valid():
    assert truncate("x = ", "(((\n)", "\n", python, multiline=True) == ""


@pytest.mark.parametrize("case", CASES, ids=[c.language for c in CASES])
def test_truncate_keeps_a_valid_expression_and_drops_a_broken_second_line(case):
    language = language_for(case.language)
    prefix = with_header(case, case.prefix)
    assert truncate(prefix, case.expression, case.suffix, language, multiline=False) == case.expression
    # On a broken document too.
    prefix = broken_far_away(case)
    assert (
        truncate(prefix, case.expression + "\n(((", case.suffix, language, multiline=False) == case.expression
    )


@pytest.mark.parametrize("language_id", ["javascript", "typescript", "java", "c", "cpp", "go", "rust"])
def test_truncate_brace_body_with_and_without_the_closing_brace_in_the_suffix(language_id):
    language = language_for(language_id)
    header = "package main\n\n" if language_id == "go" else ""
    prefix = header + ("func f() {\n  " if language_id == "go" else "void f() {\n  ")
    if language_id in ("javascript", "typescript"):
        prefix = "function f() {\n  "
    if language_id == "rust":
        prefix = "fn f() {\n  "
    body = "g();\n  h();"
    completion = body + "\n}\n\nint other() {\n  return 1;\n}\n"
    # The suffix closes the function: the completion's `}` goes.
    assert truncate(prefix, completion, "\n}\n", language, multiline=True) == body
    # The suffix does not: the completion's `}` is what the document needs, it stays.
    assert truncate(prefix, completion, "\n", language, multiline=True) == body + "\n}"


def test_truncate_unknown_language_uses_brackets_and_indentation():
    prefix = "fn main\n  "
    completion = "foo(1)\n  bar(2)\nbaz(\n"
    assert truncate(prefix, completion, "\n", None, multiline=True) == "foo(1)\n  bar(2)"
    assert truncate("x = foo(", "1, 2)", ")", None, multiline=False) == ""
    assert truncate("x = foo(", "1, 2", ")", None, multiline=False) == "1, 2"


# -- cut_at_block_exit ------------------------------------------------------------------------


def test_block_exit_python_body_of_the_opener_on_the_cursor_line():
    completion = "\n    return 1\n\ndef g():\n    pass"
    assert cut_at_block_exit("def f():", completion, python) == "\n    return 1"


def test_block_exit_python_allows_continuation_lines_at_any_indentation():
    completion = "[\n    1,\n    2,\n]\n    y = 3\nz = 4"
    assert cut_at_block_exit("    x = ", completion, python) == "[\n    1,\n    2,\n]\n    y = 3"


def test_block_exit_python_else_leaves_the_if_body():
    completion = "a()\nelse:\n    b()"
    assert cut_at_block_exit("if x:\n    ", completion, python) == "a()"


def test_block_exit_python_keeps_nested_blocks():
    completion = "for i in x:\n        if i:\n            yield i\n    return"
    assert cut_at_block_exit("def f(x):\n    ", completion, python) == completion


def test_block_exit_python_ignores_brackets_in_strings_and_comments():
    completion = "s = '('  # (\n    t = 1\nu = 2"
    assert cut_at_block_exit("def f():\n    ", completion, python) == "s = '('  # (\n    t = 1"


def test_block_exit_python_comments_do_not_end_blocks():
    completion = "c = a + b\n## old = c * 2\n# note\n        return c\nprint(c)"
    assert (
        cut_at_block_exit("    else:\n        ", completion, python)
        == completion[: completion.index("\nprint")]
    )


def test_block_exit_braces_keep_a_closing_line_and_cut_what_follows():
    completion = "return 1;\n}\n\nfunction g() {}\n"
    assert cut_at_block_exit("function f() {\n  ", completion, js) == "return 1;\n}"
    assert cut_at_block_exit("foo(function () {\n  ", "x();\n});\nbar();", js) == "x();\n});"


def test_block_exit_braces_cut_before_else():
    completion = "return 1;\n  } else {\n    return 2;\n  }"
    assert cut_at_block_exit("if (a) {\n    ", completion, js) == "return 1;"


def test_block_exit_braces_count_only_code():
    completion = "log(\"}\");\n  // }\n  x = '}';\n  y();\n}\nz();"
    java = language_for("java")
    assert cut_at_block_exit("void f() {\n  ", completion, java) == completion[: completion.index("\nz();")]


def test_block_exit_rust_lifetimes_are_not_character_literals():
    rust = language_for("rust")
    completion = "fn g<'a>(x: &'a str) -> &'a str {\n        x\n    }\n}\nfn h() {}"
    assert cut_at_block_exit("impl A {\n    ", completion, rust) == completion[: completion.index("\nfn h")]


# -- drop_suffix_duplicates -------------------------------------------------------------------


def test_drop_duplicate_trailing_lines():
    completion = "total = a + b\n    return total"
    assert drop_suffix_duplicates(completion, "\n    return total\n") == "total = a + b"


def test_drop_several_duplicate_lines_ignoring_whitespace_and_blank_lines():
    completion = "x = 1\n\ny = 2\n  z = 3  "
    assert drop_suffix_duplicates(completion, "\n\ny = 2\n\n    z = 3\nw = 4\n") == "x = 1"


def test_python_duplicates_must_have_the_same_indentation():
    completion = "v = False\n                    break"
    suffix = "\n            break\n"
    # `break` one level out is another statement in Python, but the same line in brace languages.
    assert drop_suffix_duplicates(completion, suffix, python) == completion
    assert drop_suffix_duplicates(completion, suffix) == "v = False"
    assert drop_suffix_duplicates("v = 1\n            break", suffix, python) == "v = 1"


def test_drop_duplicate_closing_brace_line():
    assert drop_suffix_duplicates("return 1;\n}", "\n}\n") == "return 1;"


def test_keep_a_closing_brace_the_completion_needs():
    # The `}` closes the `if` the completion opened; the suffix's `}` closes the function.
    completion = "if (x) {\n    y();\n  }"
    assert drop_suffix_duplicates(completion, "\n}\n") == completion


def test_no_drop_when_lines_differ():
    assert drop_suffix_duplicates("a = 1\nb = 2", "\nc = 3\n") == "a = 1\nb = 2"


def test_drop_duplicate_closing_brackets_on_the_cursor_line():
    assert drop_suffix_duplicates("1, 2)", ")\n") == "1, 2"
    assert drop_suffix_duplicates("1, 2))", "))\n") == "1, 2"
    assert drop_suffix_duplicates("a);", ");\n") == "a"
    assert drop_suffix_duplicates("x, 3]", "];\n") == "x, 3"
    # Only one of the two closers is provided; `f(g(1))` before `)` keeps one.
    assert drop_suffix_duplicates("1))", ")\n") == "1)"


def test_keep_brackets_the_completion_opened():
    assert drop_suffix_duplicates("g(1)", ")\n") == "g(1)"
    assert drop_suffix_duplicates("[1, 2]", "]\n") == "[1, 2]"


def test_keep_closers_that_do_not_match_the_suffix():
    assert drop_suffix_duplicates("1, 2)", "]\n") == "1, 2)"
    assert drop_suffix_duplicates("x,", ")\n") == "x,"


def test_drop_unpaired_closing_quote():
    assert drop_suffix_duplicates('world")', '")\n') == "world"
    assert drop_suffix_duplicates('"a"', '"\n') == '"a"'  # a whole string: its quote is its own


def test_drop_duplicates_with_empty_inputs():
    assert drop_suffix_duplicates("", ")\n") == ""
    assert drop_suffix_duplicates("x)", "") == "x)"


# -- is_multiline_position --------------------------------------------------------------------


@pytest.mark.parametrize(
    "prefix, suffix, language, expected",
    [
        # 1. text after the cursor on its line
        ("x = foo(", ")\n", python, False),
        ("if (", ") {\n}\n", js, False),
        # 2. code before the cursor
        ("def f():", "\n\nprint(1)\n", python, True),
        ("def f():", "\n    return 1\n", python, False),
        ("function f() {", "\n}\n", js, True),
        ("x = compute", "\ny = 2\n", python, False),
        ("items = [", "\n", python, True),
        # 3. empty or whitespace cursor line
        ("def f():\n    ", "\n\nprint(1)\n", python, True),
        ("def f():\n    ", "\n    return 1\n", python, False),
        ("x = 1\n", "", python, True),
        ("x = 1\n", "\n\ny = 2\n", python, True),
        ("x = 1\n", "\ny = 2\n", python, False),
        ("def f():\n    x = 1\n    ", "\nprint(1)\n", python, True),
        ("function f() {\n  a();\n  ", "\n}\n", js, True),
        ("function f() {\n  a();\n  ", "\n  b();\n}\n", js, False),
        ("", "", python, True),
        ("", "x = 1\n", python, False),
        ("x = 1\n", "\r\ny = 2\r\n", python, False),
        ("if x:\n    ", "\n\n", None, True),
        ("a\n", "\nb\n", None, False),
    ],
)
def test_is_multiline_position(prefix, suffix, language, expected):
    assert is_multiline_position(prefix, suffix, language) is expected


def test_is_multiline_ignores_trailing_comments_after_an_opener():
    assert is_multiline_position("def f():  # todo", "\n", python)
    assert is_multiline_position("if (x) { // later", "\n}\n", js)


# -- rank -------------------------------------------------------------------------------------


def test_rank_puts_valid_first_and_is_stable():
    candidates = ["(a", "a", "b)", "b", "[c"]
    assert rank(candidates, "x = ", "\n", python) == ["a", "b", "(a", "b)", "[c"]


def test_rank_unknown_language():
    assert rank(["(1", "1"], "f(", ")", None) == ["1", "(1"]
