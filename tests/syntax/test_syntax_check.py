"""check(): new syntax errors only, judged locally against the document without the completion."""

import pytest
from syntax_cases import BY_LANGUAGE, CASES, broken_far_away, with_header

from infill.syntax import check, language_for

ids = [case.language for case in CASES]


@pytest.fixture(params=CASES, ids=ids)
def case(request):
    return request.param


def lang(case):
    return language_for(case.language)


def test_valid_expression(case):
    verdict = check(with_header(case, case.prefix), case.expression, case.suffix, lang(case))
    assert verdict.valid, verdict.reason
    assert verdict.new_errors == ()


@pytest.mark.parametrize("bad", ["(a + b", "a + b)", "[a", "a +* }"])
def test_unbalanced_completion_is_invalid(case, bad):
    verdict = check(with_header(case, case.prefix), bad, case.suffix, lang(case))
    assert not verdict.valid
    assert verdict.new_errors, "an invalid verdict names the new errors"


def test_new_error_positions_are_bytes_of_the_full_document(case):
    prefix = with_header(case, case.prefix)
    verdict = check(prefix, "(a + b", case.suffix, lang(case))
    document = (prefix + "(a + b" + case.suffix).encode()
    for start, end, kind in verdict.new_errors:
        assert 0 <= start <= end <= len(document)
        assert kind == "ERROR" or kind.startswith("MISSING ")


def test_completion_inside_a_call_the_suffix_closes(case):
    prefix, suffix = with_header(case, case.call_prefix), case.call_suffix
    assert check(prefix, "2", suffix, lang(case)).valid
    # The model repeated the `)` that the suffix already has: one `)` too many.
    assert not check(prefix, "2)", suffix, lang(case)).valid


def test_completion_that_closes_what_the_suffix_leaves_open(case):
    # The suffix is only a newline: nothing closes `add(1, ` except the completion.
    prefix = with_header(case, case.call_prefix)
    closing = case.call_suffix.split("\n")[0]  # e.g. "));"
    rest = case.call_suffix[len(closing) :]
    assert check(prefix, "2" + closing, rest, lang(case)).valid
    # Without the completion the document was already missing those brackets: no worse, still valid.
    assert check(prefix, "2", rest, lang(case)).valid
    # But opening one more bracket that nothing closes is new.
    assert not check(prefix, "2" + closing + " (", rest, lang(case)).valid


def test_document_broken_200_lines_earlier(case):
    prefix = broken_far_away(case)
    assert prefix.count("\n") >= 200
    language = lang(case)
    assert language.parse((prefix + case.suffix).encode()).root_node.has_error
    good = check(prefix, case.expression, case.suffix, language)
    assert good.valid, good.reason
    bad = check(prefix, "(" + case.expression, case.suffix, language)
    assert not bad.valid


def test_document_broken_after_the_cursor(case):
    language = lang(case)
    prefix = with_header(case, case.prefix)
    suffix = case.suffix + "\n" + case.broken_line + "\n"
    assert check(prefix, case.expression, suffix, language).valid
    assert not check(prefix, case.expression + " {", suffix, language).valid


COMPLETIONS = ["a + b", "(a + b", "x\n\n  y ]", "ünï😀", "}\n\nz", "'", "\n", "/* ", '"""']


def test_incremental_parse_matches_a_fresh_parse(case):
    """The cached tree + edit path must see exactly what a fresh parse of the same text sees."""
    from infill.syntax.validity import _base_document, _parse_with_insertion

    language = lang(case)
    prefix = broken_far_away(case)
    for completion in COMPLETIONS:
        base = _base_document(language, prefix, case.suffix)
        incremental = _parse_with_insertion(language, base, completion.encode())
        fresh = language.parse(base.before + completion.encode() + base.after)
        assert str(incremental.root_node) == str(fresh.root_node)


@pytest.mark.parametrize("where", ["clean", "broken far away", "broken after"])
def test_window_gives_the_verdicts_of_the_whole_document(case, where, monkeypatch):
    """Checks reparse a window around the cursor; the verdicts must be those of the whole file."""
    from infill.syntax import validity

    prefix, suffix = with_header(case, case.prefix), case.suffix
    if where == "broken far away":
        prefix = broken_far_away(case)
    if where == "broken after":
        suffix = case.suffix + "\n" + case.broken_line
    candidates = COMPLETIONS + [case.expression, case.expression + "\n" + case.filler_line.format(i=99)]
    windowed = [check(prefix, text, suffix, lang(case)).valid for text in candidates]
    if where == "broken far away":  # the window leaves the broken line out
        assert validity._base_document(lang(case), prefix, suffix).offset > 0

    monkeypatch.setattr(validity, "_window", lambda language, root, document, start, end: (0, len(document)))
    monkeypatch.setattr(validity, "_cache", type(validity._cache)())
    whole = [check(prefix, text, suffix, lang(case)).valid for text in candidates]
    assert windowed == whole


def test_python_window_inside_a_large_class():
    from infill.syntax import validity

    python = language_for("python")
    methods = "".join(
        f"    def m{i}(self, x):\n        y = x + {i}\n        return y\n\n" for i in range(600)
    )
    prefix = "class Big:\n" + methods + "    def target(self, values):\n        "
    suffix = "\n\n" + methods
    base = validity._base_document(python, prefix, suffix)
    assert len(base.before) + len(base.after) < 1000  # a few methods, not the 2,400-line class
    assert check(prefix, "return sum(values)", suffix, python).valid
    assert not check(prefix, "return sum(values", suffix, python).valid
    assert not check(prefix, "if values:", suffix, python).valid
    assert check(prefix, "return 1\n\n    def other(self):\n        pass", suffix, python).valid


def test_the_cached_tree_is_not_modified_by_checks(case):
    language = lang(case)
    prefix = with_header(case, case.prefix)
    verdicts = [
        check(prefix, text, case.suffix, language).valid
        for text in ["(", case.expression, "(", case.expression]
    ]
    assert verdicts == [False, True, False, True]


def test_empty_completion_is_trivially_valid(case):
    assert check(with_header(case, case.prefix), "", case.suffix, lang(case)).valid


def test_unicode_around_the_cursor(case):
    language = lang(case)
    # Comments with emoji and CJK shift byte offsets; the verdicts must not change.
    comment = "# 你好 😀 ünïcödé\n" if case.language == "python" else "// 你好 😀 ünïcödé\n"
    prefix = with_header(case, comment + case.prefix)
    assert check(prefix, case.expression, case.suffix, language).valid
    assert not check(prefix, "(" + case.expression, case.suffix, language).valid
    # A string literal completion holding emoji and CJK.
    assert check(prefix, '"😀你好"', case.suffix, language).valid


def test_nul_bytes(case):
    language = lang(case)
    prefix = with_header(case, case.prefix)
    # A NUL is no token in these grammars (Go reads it as a separator): a bracket left open next
    # to one is still caught, and a NUL already in the document does not change the verdicts.
    assert not check(prefix, "(" + case.expression + "\x00", case.suffix, language).valid
    prefix_with_nul = with_header(case, "\x00\n" + case.prefix)
    assert check(prefix_with_nul, case.expression, case.suffix, language).valid
    assert not check(prefix_with_nul, "(" + case.expression, case.suffix, language).valid


def test_empty_prefix_and_suffix():
    python = language_for("python")
    assert check("", "x = 1\n", "", python).valid
    assert not check("", "x = (1\n", "", python).valid
    assert check("x = ", "1", "", python).valid
    assert check("", "import os\n", "\nprint(os.sep)\n", python).valid
    assert not check("", "def f(:\n", "\nprint(1)\n", python).valid


def test_python_typing_a_statement_keeps_its_existing_error():
    python = language_for("python")
    # `if x ` is already an error; finishing the condition does not add one.
    assert check("if x ", "== 1", "\n    pass\n", python).valid
    assert check("if x ", "== 1:", "\n    pass\n", python).valid
    # ... but leaving a bracket open there does.
    assert not check("if x ", "== (1", "\n    pass\n", python).valid
    assert not check("x = ", "foo(", "\n", python).valid


def test_python_block_header_without_a_body_is_invalid():
    """tree-sitter-python parses `if x:` + dedent as an empty block; the guard counts it missing."""
    python = language_for("python")
    prefix, suffix = "def f(x):\n    ", "\n\nprint(1)\n"
    assert not check(prefix, "if x:", suffix, python).valid
    assert not check(prefix, "y = x\n    for i in range(x):", suffix, python).valid
    assert check(prefix, "if x:\n        return 1", suffix, python).valid
    # The body the cursor is in was empty before: a comment leaves it so, code fills it.
    assert check("def g():\n    ", "return 1", "\n", python).valid
    assert check("def g():\n    ", "# later", "\n", python).valid


def test_brace_language_extra_closing_brace():
    case = BY_LANGUAGE["javascript"]
    js = language_for("javascript")
    prefix = "function f() {\n  "
    assert check(prefix, "return 1;", "\n}\n", js).valid
    # The suffix already closes the function.
    assert not check(prefix, "return 1;\n}", "\n}\n", js).valid
    # At the end of the file the same `}` is what the document needs.
    assert check(prefix, "return 1;\n}", "\n", js).valid
    assert case.language == "javascript"


def test_unknown_language_uses_bracket_balance():
    assert check("foo(", "1, 2", ")", None).valid
    assert not check("foo(", "1, 2)", ")", None).valid
    assert check("foo(", "1, 2)", "\n", None).valid
    assert not check("x = ", "[1, 2", "\n", None).valid
    # Brackets inside strings do not count.
    assert check("x = ", "'(' + \"[\"", "\n", None).valid
    # A document with unbalanced brackets elsewhere: only the change is judged.
    assert check("(((\nx = ", "1", "\n]]\n", None).valid
    assert not check("(((\nx = ", "{1", "\n]]\n", None).valid


def test_large_document_falls_back_to_bracket_rules(monkeypatch):
    from infill.syntax import validity

    monkeypatch.setattr(validity, "MAX_PARSE_BYTES", 100)
    python = language_for("python")
    prefix = "x = 1\n" * 50 + "y = "
    verdict = check(prefix, "foo(1", "\n", python)
    assert not verdict.valid and "unmatched bracket" in verdict.reason
    assert check(prefix, "foo(1)", "\n", python).valid


def test_language_may_be_given_as_a_language_id():
    assert not check("x = ", "(1", "\n", "python").valid
    assert check("x = ", "1", "\n", "python").valid
    assert not check("x = ", "(1", "\n", "plaintext").valid  # unknown: bracket rules


def test_new_error_positions_count_utf8_bytes_across_the_window():
    # 300 lines of emoji/CJK comments put the cursor far from the window start, in bytes and chars.
    prefix = "// 😀😀😀 你好\n" * 300 + "function f() {\n  return "
    verdict = check(prefix, "foo(1", ";\n}\n", "javascript")
    gap = len(prefix.encode())
    assert verdict.new_errors == ((gap + len("foo(1"), gap + len("foo(1"), "MISSING )"),)

    prefix = "# 😀😀😀 你好\n" * 300 + "def f():\n    return 1\n"
    verdict = check(prefix, "def g(:\n    pass\n", "\n", "python")
    gap = len(prefix.encode())
    assert verdict.new_errors == ((gap + len("def g("), gap + len("def g("), "MISSING )"),)


def test_whole_file_as_completion_with_empty_prefix_and_suffix(case):
    language = lang(case)
    source = case.header + case.filler_line.format(i=1) + case.filler_line.format(i=2)
    assert check("", source, "", language).valid
    assert not check("", source + "{", "", language).valid


def test_any_split_of_a_valid_file_is_valid(case):
    """The completion restores the original file, whatever broken prefix + suffix it starts from."""
    language = lang(case)
    source = case.header + "".join(case.filler_line.format(i=i) for i in range(4))
    for cut in range(0, len(source), 5):
        for length in (1, 4, 17, 60):
            prefix, middle, suffix = source[:cut], source[cut : cut + length], source[cut + length :]
            verdict = check(prefix, middle, suffix, language)
            assert verdict.valid, (cut, middle, verdict)


def test_a_bracket_left_open_between_whole_lines_is_invalid(case):
    language = lang(case)
    source = case.header + "".join(case.filler_line.format(i=i) for i in range(4))
    starts = [0] + [i + 1 for i, ch in enumerate(source) if ch == "\n"]
    checked = 0
    for a in starts:
        for b in starts:
            prefix, middle, suffix = source[:a], source[a:b], source[b:]
            if b <= a or language.parse((prefix + suffix).encode()).root_node.has_error:
                continue  # only cuts that leave a valid document: its errors are all new
            assert check(prefix, middle, suffix, language).valid
            assert not check(prefix, middle + "(", suffix, language).valid, (a, b)
            assert not check(prefix, "{" + middle, suffix, language).valid, (a, b)
            checked += 1
    assert checked >= 10


def test_any_split_inside_a_large_python_class_is_valid():
    """Python windows inside blocks must not change verdicts either."""
    methods = [
        f"    def m{i}(self, x):\n        if x > {i}:\n            return [x]\n        return x\n\n"
        for i in range(150)
    ]
    source = "class Big:\n" + "".join(methods)
    assert len(source) > 8 * 1024  # large enough for windows inside the class
    start = source.index("    def m75")
    for cut in range(start, start + 2 * len(methods[75]), 3):
        for length in (1, 9, 40):
            prefix, middle, suffix = source[:cut], source[cut : cut + length], source[cut + length :]
            assert check(prefix, middle, suffix, "python").valid, (cut, middle)


def test_cpp_loop_macros_broken_before_and_after():
    """tree-sitter cannot parse `rep(i, 1, n) stmt`; an empty `for(` around them breaks more, and
    filling it in turns one big ERROR into several small ones. Those are not the completion's."""
    cpp = language_for("cpp")
    prefix = "#define rep(i,a,b) for(int i=a;i<=b;i++)\nint main(){\n    int n; cin >> n;\n    for("
    suffix = ") cout << i;\n    rep(i, 1, n) cout << i;\n    rep(j, 1, n) cout << j;\n    return 0;\n}\n"
    assert check(prefix, "int i=0;i<n;i++", suffix, cpp).valid
    assert not check(prefix, "int i=0;i<n;i++) {", suffix, cpp).valid
    assert not check(prefix, "int i=0;(i<n;i++", suffix, cpp).valid
    # The `)` the suffix has already: the bracket rule catches what the grammar excuses.
    assert not check(prefix, "int i=0;i<n;i++)", suffix, cpp).valid
