"""The grammar-free bracket rules, thread safety, and that the benchmark command runs."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from infill.syntax import guard
from infill.syntax.brackets import bracket_problems, indentation, outer_closers, unmatched_brackets


@pytest.mark.parametrize(
    "text, style, unmatched",
    [
        ("f(a[1], {b: 2})", "generic", []),
        ("f(a[1)", "generic", [3]),  # the `[` is never closed; `)` still closes `f(`
        (")(", "generic", [0, 1]),
        ("s = '(' + \"[\"", "generic", []),
        ("x = ( # )", "python", [4]),
        ('x = """\n(\n""" + (', "python", [16]),
        ("const s = `${a}(`; f(", "js", [20]),
        ("// (\nf(/* ) */", "js", [6]),
        ("char c = '{'; f(", "c", [15]),
        ("fn f<'a>(x: &'a str) {", "c", [21]),  # lifetimes are not character literals
        ("s = 'abc\nf(1)", "generic", []),  # an unterminated quote ends at the line end
    ],
)
def test_unmatched_brackets(text, style, unmatched):
    assert unmatched_brackets(text, style) == unmatched
    assert bracket_problems(text, style) == len(unmatched)


def test_outer_closers_close_what_the_text_did_not_open():
    assert outer_closers("a)(b)]") == {1, 5}
    assert outer_closers("(a)") == set()


def test_indentation_counts_tabs_like_python():
    assert indentation("    x") == 4
    assert indentation("\tx") == 8
    assert indentation("  \tx") == 8
    assert indentation("") == 0


def test_guard_from_several_threads_agrees_with_one_thread():
    cases = [
        ("def f(x):\n    return ", "\n", "x + 1", "python"),
        ("def f(x):\n    return ", "\n", "(x + 1", "python"),
        ("function f() {\n  ", "\n}\n", "return 1;\n}", "javascript"),
        ("fn f() -> i32 {\n    ", "\n}\n", "1 + 2", "rust"),
    ] * 10
    expected = [guard(*case) for case in cases]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(lambda case: guard(*case), cases)) == expected


def test_bench_command_writes_json(tmp_path, capsys):
    from infill.syntax import bench

    out = tmp_path / "bench.json"
    report = bench.main(["--lines", "300", "--repeats", "2", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["document"]["lines"] >= 300
    assert set(saved["results"]) == set(report["results"]) >= {"full parse", "check (warm)"}
    assert "median ms" in capsys.readouterr().out
