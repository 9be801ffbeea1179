"""The document store: incremental edits, LSP positions in three encodings, cursor windows."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infill.syntax import positions as reference
from lsp_server.documents import (UTF8, UTF16, UTF32, Document, Documents, index_to_units,
                                  split_lines, units_to_index)

ALPHABET = st.sampled_from(["a", "b", " ", "é", "😀", "\n", "\r", "\r\n", "\x00", "\t", "中"])
TEXT = st.lists(ALPHABET, max_size=40).map("".join)
POSITION = st.tuples(st.integers(0, 12), st.integers(0, 30))


def test_lines_keep_their_breaks_and_lsp_counts_three_kinds():
    assert split_lines("a\nb\r\nc\rd") == ["a\n", "b\r\n", "c\r", "d"]
    assert split_lines("a\n") == ["a\n", ""]
    assert split_lines("") == [""]
    assert split_lines("a\u2028b\x0cc") == ["a\u2028b\x0cc"]  # not LSP line breaks


def test_utf16_positions_and_surrogate_pairs():
    line = "x😀y"
    assert [units_to_index(line, u) for u in range(6)] == [0, 1, 1, 2, 3, 3]
    assert [index_to_units(line, i) for i in range(4)] == [0, 1, 3, 4]


def test_utf8_and_utf32_positions():
    line = "é😀z"  # 2 + 4 + 1 bytes
    assert [units_to_index(line, u, UTF8) for u in range(9)] == [0, 0, 1, 1, 1, 1, 2, 3, 3]
    assert [index_to_units(line, i, UTF8) for i in range(4)] == [0, 2, 6, 7]
    assert [units_to_index(line, u, UTF32) for u in range(5)] == [0, 1, 2, 3, 3]


def test_positions_are_clamped_never_raise():
    doc = Document("file:///a.py", "ab\ncd")
    assert doc.position(0, 99) == (0, 2)
    assert doc.position(99, 0) == (1, 2)
    assert doc.position(-3, 0) == (0, 0)


def test_edits_past_the_end_append_and_reversed_ranges_are_ordered():
    doc = Document("file:///a.py", "ab\ncd")
    doc.apply_change("X", (50, 0), (60, 0))
    assert doc.text == "ab\ncdX"
    doc.apply_change("", (1, 2), (0, 1))
    assert doc.text == "aX"


def test_a_cursor_sees_a_window_each_way():
    doc = Document("file:///a.py", "one\ntwo\nthree\nfour")
    cursor = doc.cursor(2, 2, 6)
    assert (cursor.prefix, cursor.suffix) == ("two\nth", "ree\nfo")
    assert (cursor.line, cursor.character) == (2, 2)


def test_five_megabytes_edit_in_place():
    text = "x = 1  # ünï 😀\n" * 350_000
    doc = Document("file:///big.py", text)
    for i in range(100):
        doc.apply_change("y", (200_000, i), (200_000, i))
    cursor = doc.cursor(200_000, 100, 8000)
    assert cursor.prefix.endswith("\n" + "y" * 100) and len(cursor.prefix) == 8000
    assert len(doc.lines) == 350_001


def test_the_store_never_reads_an_unknown_uri():
    docs = Documents()
    assert docs.get("file:///etc/passwd") is None
    docs.open("file:///a.py", "x", "python", 1)
    docs.close("file:///a.py")
    docs.close("file:///a.py")
    assert len(docs) == 0


@settings(max_examples=300, deadline=None)
@given(TEXT, st.integers(0, 40))
def test_utf16_conversion_agrees_with_the_syntax_package(line, units):
    line = line.replace("\r", "").replace("\n", "")
    assert units_to_index(line, units) == reference.utf16_offset_to_index(line, units)
    index = min(units, len(line))
    assert index_to_units(line, index) == reference.index_to_utf16_offset(line, index)


@settings(max_examples=300, deadline=None)
@given(TEXT, st.lists(st.tuples(POSITION, POSITION, TEXT), max_size=8), POSITION,
       st.integers(1, 20))
def test_incremental_edits_match_whole_text_edits(text, edits, cursor_at, window):
    """Against the whole-string reference in infill.syntax.positions (UTF-16, clamped)."""
    doc = Document("file:///f.py", text)
    for start, end, new in edits:
        doc.apply_change(new, start, end)
        a = reference.position_to_index(text, *start)
        b = reference.position_to_index(text, *end)
        a, b = min(a, b), max(a, b)
        text = text[:a] + new + text[b:]
        assert doc.text == text
        assert doc.lines == split_lines(text)
    cursor = doc.cursor(*cursor_at, window)
    at = reference.position_to_index(text, *cursor_at)
    assert cursor.prefix == text[:at][-window:]
    assert cursor.suffix == text[at:at + window]
    assert reference.position_to_index(text, cursor.line, cursor.character) == at


@pytest.mark.parametrize("encoding", [UTF8, UTF16, UTF32])
def test_round_trip_in_each_encoding(encoding):
    line = "a😀é中\x00b"
    for index in range(len(line) + 1):
        assert units_to_index(line, index_to_units(line, index, encoding), encoding) == index
