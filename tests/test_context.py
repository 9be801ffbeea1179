from infill.context import clip_text, cut_completion, first_code_line, fit_to_tokens


def test_clip_keeps_text_nearest_the_cursor_and_starts_on_a_line():
    prefix = "".join(f"line{i}\n" for i in range(100))
    suffix = "".join(f"after{i}\n" for i in range(100))
    p, s = clip_text(prefix, suffix, 120)
    assert prefix.endswith(p) and suffix.startswith(s)
    assert p.startswith("line") and len(p) + len(s) <= 120
    assert len(s) >= 120 // 3


def test_clip_gives_a_short_prefix_room_to_the_suffix():
    p, s = clip_text("x = ", "y" * 500, 100)
    assert p == "x = " and len(s) == 96


def test_fit_to_tokens_meets_the_budget():
    count = lambda p, s: len(p) + len(s)  # one token per character
    p, s = fit_to_tokens("a\n" * 5000, "b\n" * 5000, 300, count)
    assert count(p, s) <= 300


def test_single_line_stops_at_the_newline():
    assert cut_completion("return x\n    y", "", False, 16) == ("return x", True)
    assert cut_completion("return x", "", False, 16) == ("return x", False)


def test_multi_line_stops_where_it_runs_into_the_suffix():
    suffix = "\n    return total\n"
    assert first_code_line(suffix) == "return total"
    text = "    total = sum(xs)\n    return total\n"
    assert cut_completion(text, suffix, True, 16) == ("    total = sum(xs)", True)


def test_multi_line_is_capped_in_lines():
    text = "".join(f"a{i}\n" for i in range(20))
    cut, stop = cut_completion(text, "", True, 4)
    assert stop and cut.count("\n") == 3


def test_a_line_repeating_the_line_before_ends_a_multiline_completion():
    text = "    from ._impl import getchar\n    from ._impl import getchar\n    from ._impl import x\n"
    assert cut_completion(text, "", True, 16) == ("    from ._impl import getchar", True)
    first = "self.path = path\n        self.path = path\n"  # the first line starts at the cursor
    assert cut_completion(first, "", True, 16) == ("self.path = path", True)
    short = "    )\n    )\n    y = 1\n"  # short repeated lines are ordinary code
    assert cut_completion(short, "", True, 16) == (short, False)


def test_a_block_of_lines_written_twice_in_a_row_ends_a_multiline_completion():
    loop = "self.x = x\n        self.y = y\n        self.z = z\n" * 3 + "        self.x"
    assert cut_completion(loop, "", True, 16) == (
        "self.x = x\n        self.y = y\n        self.z = z", True)
    # a block of short lines repeated is ordinary code, as is one line repeated further on
    code = "    try:\n        f()\n    try:\n        f()\n    x = compute(1)\n    y = 2\n" \
           "    x = compute(1)\n"
    assert cut_completion(code, "", True, 16) == (code, False)


def test_a_blank_line_ends_a_multiline_completion_where_the_cursor_ends_a_paragraph():
    # the cursor's line is followed by a blank line and the next method: the completion closes
    # the docstring, then would open a method of its own before the suffix's
    suffix = "\n\n    def __init__(self, environment):\n        pass\n"
    text = '    """\n\n    def __init__(self, **members):\n        self.members = members\n'
    assert cut_completion(text, suffix, True, 16) == ('    """', True)
    # a leading blank line (the cursor at a line end) is not the paragraph's end
    assert cut_completion('\n    return 1\n\n    x', suffix, True, 16) == ("\n    return 1", True)


def test_blank_lines_inside_a_completion_stay_where_code_follows_the_cursor_line():
    text = "    a = 1\n\n    b = 2\n"
    assert cut_completion(text, "\n    return a + b\n", True, 16) == (text, False)
    assert cut_completion(text, "", True, 16) == (text, False)  # the end of the file
