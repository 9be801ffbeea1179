"""LSP positions <-> Python string indices.

LSP counts `character` in UTF-16 code units (the default `positionEncoding`), Python indexes code
points: every character outside the Basic Multilingual Plane (emoji, rare CJK) is one Python
character but two UTF-16 units. Lines end at "\\n", "\\r\\n" or "\\r". Out-of-range positions are
clamped, as the LSP spec asks, and a position between the two halves of a surrogate pair is moved to
the start of that character: clients do send such positions, and a crash would lose the request.
"""

from __future__ import annotations

import bisect
import re

LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the line breaks LSP counts


def split_lines(text: str) -> list[str]:
    """Lines with their breaks; the last one has none and may be empty ("a\\n" -> ["a\\n", ""])."""
    if "\r" not in text:  # the common case, done in C
        parts = text.split("\n")
        return [part + "\n" for part in parts[:-1]] + [parts[-1]]
    lines, start = [], 0
    for match in LINE_BREAK.finditer(text):
        lines.append(text[start:match.end()])
        start = match.end()
    lines.append(text[start:])
    return lines


def content(line: str) -> str:
    """A line without its break."""
    if line.endswith("\r\n"):
        return line[:-2]
    if line.endswith(("\n", "\r")):
        return line[:-1]
    return line


def utf16_len(text: str) -> int:
    """Length of `text` in UTF-16 code units."""
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def utf16_offset_to_index(text_line: str, character: int) -> int:
    """Python index in `text_line` of UTF-16 offset `character`, clamped to [0, len(text_line)]."""
    if character <= 0:
        return 0
    if text_line.isascii():
        return min(character, len(text_line))
    units = 0
    for index, ch in enumerate(text_line):
        width = 2 if ord(ch) > 0xFFFF else 1
        if units + width > character:
            return index  # `character` is this character's start, or inside its surrogate pair
        units += width
    return len(text_line)


def index_to_utf16_offset(text_line: str, index: int) -> int:
    """UTF-16 offset of Python index `index` in `text_line`, clamped to the line."""
    index = max(0, min(index, len(text_line)))
    return utf16_len(text_line[:index])


class Lines:
    """A text as its lines, each with its own break, edited by LSP ranges.

    Positions are clamped: past the end of a line or of the text is its end. Subclasses say
    how a position's character counts (`index_in_line`); here, UTF-16 code units.
    """

    def __init__(self, text: str):
        self.lines = split_lines(text)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def index_in_line(self, line: str, character: int) -> int:
        return utf16_offset_to_index(line, character)

    def position(self, line: int, character: int) -> tuple[int, int]:
        """(line index, index in the line) of an LSP position, clamped to the text."""
        if line >= len(self.lines):
            last = len(self.lines) - 1
            return last, len(content(self.lines[last]))
        line = max(0, line)
        return line, self.index_in_line(content(self.lines[line]), character)

    def replace(self, text: str, start: tuple[int, int] | None = None,
                end: tuple[int, int] | None = None) -> None:
        """Replace the range start..end (LSP (line, character) pairs) with text; no range
        replaces the whole text."""
        if start is None or end is None:
            self.lines = split_lines(text)
            return
        (sl, sc), (el, ec) = sorted([self.position(*start), self.position(*end)])
        # Re-split one line on each side as well: the edit may join a \r and a \n.
        first, stop = max(0, sl - 1), min(len(self.lines), el + 2)
        segment = "".join(self.lines[first:stop])
        start_at = sum(len(l) for l in self.lines[first:sl]) + sc
        end_at = sum(len(l) for l in self.lines[first:el]) + ec
        replaced = split_lines(segment[:start_at] + text + segment[end_at:])
        if stop < len(self.lines):
            replaced.pop()  # the empty tail after the segment's last break
        self.lines[first:stop] = replaced


def line_starts(text: str) -> list[int]:
    """Index at which each line of `text` starts (LSP line breaks: \\n, \\r\\n, \\r)."""
    return [0] + [match.end() for match in LINE_BREAK.finditer(text)]


def position_to_index(text: str, line: int, character: int) -> int:
    """Python index in `text` of the LSP position (line, UTF-16 character), clamped.

    A line past the end gives len(text); a character past the line end gives the line end.
    """
    if line < 0:
        return 0
    starts = line_starts(text)
    if line >= len(starts):
        return len(text)
    return starts[line] + utf16_offset_to_index(_line_text(text, starts, line), character)


def index_to_position(text: str, index: int) -> tuple[int, int]:
    """The LSP position (line, UTF-16 character) of Python index `index` in `text`, clamped."""
    index = max(0, min(index, len(text)))
    starts = line_starts(text)
    line = bisect.bisect_right(starts, index) - 1
    # Slicing the line without its break clamps an index between "\r" and "\n" to the line end.
    return line, utf16_len(_line_text(text, starts, line)[: index - starts[line]])


def split_at_position(text: str, line: int, character: int) -> tuple[str, str]:
    """(prefix, suffix) of `text` at an LSP position: what the engines and the guard take."""
    index = position_to_index(text, line, character)
    return text[:index], text[index:]


def _line_text(text: str, starts: list[int], line: int) -> str:
    end = starts[line + 1] if line + 1 < len(starts) else len(text)
    return text[starts[line] : end].rstrip("\r\n")
