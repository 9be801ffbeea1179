"""LSP positions (UTF-16 code units) <-> Python indices."""

import pytest

from infill.syntax import (
    index_to_position,
    index_to_utf16_offset,
    position_to_index,
    split_at_position,
    utf16_len,
    utf16_offset_to_index,
)

LINE = "a😀b你c"  # 😀 is two UTF-16 units, 你 is one


def test_utf16_len():
    assert utf16_len("") == 0
    assert utf16_len("abc") == 3
    assert utf16_len(LINE) == 6
    assert utf16_len("😀😀") == 4


@pytest.mark.parametrize(
    "character, index",
    [(0, 0), (1, 1), (3, 2), (4, 3), (5, 4), (6, 5)],
)
def test_utf16_offset_to_index(character, index):
    assert utf16_offset_to_index(LINE, character) == index
    assert index_to_utf16_offset(LINE, index) == character


def test_offset_inside_a_surrogate_pair_is_clamped_to_the_character_start():
    assert utf16_offset_to_index(LINE, 2) == 1  # between the halves of 😀
    assert utf16_offset_to_index("😀", 1) == 0


def test_out_of_range_offsets_are_clamped():
    assert utf16_offset_to_index(LINE, -5) == 0
    assert utf16_offset_to_index(LINE, 100) == len(LINE)
    assert utf16_offset_to_index("", 3) == 0
    assert utf16_offset_to_index("abc", 10) == 3
    assert index_to_utf16_offset(LINE, 100) == 6
    assert index_to_utf16_offset(LINE, -1) == 0


def test_round_trip_over_every_index():
    text = "x😀y\n你好😀\r\n\rlast 🎉 line"
    for index in range(len(text) + 1):
        line, character = index_to_position(text, index)
        back = position_to_index(text, line, character)
        # Indices on a line break map to the line end; everything else round-trips exactly.
        assert back == index or text[index - 1 : index + 1] == "\r\n"


def test_position_to_index_with_all_line_breaks():
    text = "ab\ncd\r\nef\rgh"
    assert position_to_index(text, 0, 1) == 1
    assert position_to_index(text, 1, 0) == 3
    assert position_to_index(text, 2, 1) == 8
    assert position_to_index(text, 3, 2) == 12
    # A character past the line end stops at the line end, before the break.
    assert position_to_index(text, 1, 99) == 5
    # Lines past the end give the end of the text; negative lines the start.
    assert position_to_index(text, 10, 0) == len(text)
    assert position_to_index(text, -1, 0) == 0


def test_index_to_position():
    text = "ab\n😀c\r\nd"
    assert index_to_position(text, 0) == (0, 0)
    assert index_to_position(text, 3) == (1, 0)
    assert index_to_position(text, 4) == (1, 2)
    assert index_to_position(text, 5) == (1, 3)
    assert index_to_position(text, 7) == (2, 0)
    assert index_to_position(text, 6) == (1, 3)  # between "\r" and "\n": the end of line 1
    assert index_to_position(text, 100) == (2, 1)


def test_split_at_position_with_emoji_and_cjk():
    text = "s = '😀你'\nprint(s)\n"
    # "s = '" is 5 units, 😀 two more, 你 one more.
    assert split_at_position(text, 0, 8) == ("s = '😀你", "'\nprint(s)\n")
    assert split_at_position(text, 0, 7) == ("s = '😀", "你'\nprint(s)\n")
    # Between the halves of 😀: the split lands before it.
    assert split_at_position(text, 0, 6) == ("s = '", "😀你'\nprint(s)\n")
    assert split_at_position(text, 1, 6) == ("s = '😀你'\nprint(", "s)\n")


def test_empty_text():
    assert position_to_index("", 0, 0) == 0
    assert index_to_position("", 0) == (0, 0)
    assert split_at_position("", 3, 3) == ("", "")
