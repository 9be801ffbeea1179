"""Open documents, kept in sync incrementally, and the text around a cursor.

A document is a list of lines, each with its own line break, so a keystroke costs a slice
assignment over the line list instead of rebuilding a multi-megabyte string, and the text
handed to the engines is read from the lines near the cursor only (`contextChars` each side).

LSP positions count UTF-16 code units (or UTF-8 bytes / code points, when the client offers
that and pygls picks it: Neovim does) and three kinds of line break (\\r\\n, \\r, \\n).
A position past the end of a line or of the document is clamped to that end; one inside a
surrogate pair is moved to the start of the pair. Nothing here raises on a bad position.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from infill.syntax.positions import LINE_BREAK, Lines, content, split_lines  # noqa: F401 (re-exported)

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"  # the position encodings LSP 3.17 names


def units_to_index(text: str, units: int, encoding: str = UTF16) -> int:
    """Index into text of an offset in the encoding's code units, clamped to [0, len(text)]
    and moved back to the start of a character it falls inside of."""
    if units <= 0:
        return 0
    if encoding == UTF32 or text.isascii():
        return min(units, len(text))
    if encoding == UTF8:
        data = text.encode("utf-8", "surrogatepass")
        cut = min(units, len(data))
        while cut < len(data) and data[cut] & 0xC0 == 0x80:  # a continuation byte
            cut -= 1
        return min(len(text), len(data[:cut].decode("utf-8", "surrogatepass")))
    data = text.encode("utf-16-le", "surrogatepass")
    cut = min(units, len(data) // 2)
    if cut < len(data) // 2 and _is_low_surrogate(data, cut) and _is_high_surrogate(data, cut - 1):
        cut -= 1
    return min(len(text), len(data[: 2 * cut].decode("utf-16-le", "surrogatepass")))


def index_to_units(text: str, index: int, encoding: str = UTF16) -> int:
    if encoding == UTF32 or text.isascii():
        return index
    if encoding == UTF8:
        return len(text[:index].encode("utf-8", "surrogatepass"))
    return len(text[:index].encode("utf-16-le", "surrogatepass")) // 2


def _unit(data: bytes, i: int) -> int:
    return data[2 * i] | data[2 * i + 1] << 8


def _is_low_surrogate(data: bytes, i: int) -> bool:
    return 0xDC00 <= _unit(data, i) <= 0xDFFF


def _is_high_surrogate(data: bytes, i: int) -> bool:
    return 0xD800 <= _unit(data, i) <= 0xDBFF


@dataclass(frozen=True)
class Cursor:
    """What the engines see at a position: windows of text before and after it."""

    prefix: str
    suffix: str
    line: int  # the clamped position, in the client's units
    character: int
    revision: int


def path_of(uri: str) -> str | None:
    """A file path for the language guess by extension (None for untitled: and the like)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("file", ""):
        return unquote(parsed.path) or None
    return None


class Document(Lines):
    def __init__(self, uri: str, text: str, language_id: str | None = None,
                 version: int | None = None, encoding: str = UTF16):
        super().__init__(text)
        self.uri = uri
        self.encoding = encoding
        self.revision = 0  # counts edits: a completion for an older revision is stale
        self.language_id = language_id or None
        self.version = version
        self.path = path_of(uri)

    def index_in_line(self, line: str, character: int) -> int:
        return units_to_index(line, character, self.encoding)

    def apply_change(self, text: str, start: tuple[int, int] | None = None,
                     end: tuple[int, int] | None = None) -> None:
        """Replace the range start..end (LSP (line, character) pairs) with text; no range
        replaces the whole document."""
        self.revision += 1
        self.replace(text, start, end)

    def cursor(self, line: int, character: int, window: int) -> Cursor:
        """The text before and after a position, up to `window` characters each way."""
        li, ci = self.position(line, character)
        current = self.lines[li]
        head = current[max(0, ci - window):ci]
        earlier = _take(_backwards(self.lines, li), window - len(head))
        prefix = _clip_left("".join(reversed(list(earlier))), window - len(head)) + head
        tail = current[ci:ci + window]
        later = _take(_forwards(self.lines, li + 1), window - len(tail))
        suffix = tail + "".join(later)[:max(0, window - len(tail))]
        return Cursor(prefix, suffix, li, index_to_units(content(current), ci, self.encoding),
                      self.revision)


def _backwards(lines: list[str], stop: int) -> Iterator[str]:
    for i in range(stop - 1, -1, -1):
        yield lines[i]


def _forwards(lines: list[str], start: int) -> Iterator[str]:
    for i in range(start, len(lines)):
        yield lines[i]


def _take(lines: Iterator[str], budget: int) -> Iterator[str]:
    """Lines until their total length reaches budget (the last one may overshoot)."""
    for line in lines:
        if budget <= 0:
            return
        yield line
        budget -= len(line)


def _clip_left(text: str, size: int) -> str:
    return text[max(0, len(text) - size):] if size > 0 else ""


class Documents:
    """The open documents by URI. An unknown URI is simply absent: never read from disk."""

    def __init__(self, encoding: str = UTF16):
        self.encoding = encoding  # what the server negotiated in `initialize`
        self._docs: dict[str, Document] = {}

    def open(self, uri: str, text: str, language_id: str | None, version: int | None) -> Document:
        doc = self._docs[uri] = Document(uri, text, language_id, version, self.encoding)
        return doc

    def get(self, uri: str) -> Document | None:
        return self._docs.get(uri)

    def close(self, uri: str) -> None:
        self._docs.pop(uri, None)

    def __len__(self) -> int:
        return len(self._docs)
