"""Traces from real source files (`infill trace make`).

- type: the file typed from top to bottom into an empty document (with `keys`: the document
  opens with the file up to a paragraph chosen by the seed, and about `keys` keystrokes of what
  follows are typed, ending at a line end). Nothing follows the cursor.
- edit: a block body (a function's, preferably; found with tree-sitter, or by indentation for
  languages without a grammar) is selected and deleted, then retyped, so the code after it is
  a real suffix. `edits` blocks per file, one after another (each edit restores the file).

One keystroke is one character, except Enter: the editor's auto-indent is simulated by
inserting the line break and the next line's indentation at once (an editor guessing the
indentation right), and the indentation of the first line typed is one key (Tab). There is no
auto-pairing of brackets or quotes. A `request` event follows every keystroke and deletion.

Timing (seeded, `Typist`): `speed` ms per key with log-normal jitter; bursts of a few keys at
about half that; a longer wait after punctuation; a pause before each Enter (the line end);
now and then a long pause at a line start (thinking). Waits of 3 keys or more are written as
`pause` events as well.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass
from pathlib import Path

from infill.traces.format import LINE_BREAK, after_insert, content, position, split_lines

PUNCTUATION = frozenset(",;:.()[]{}=")
INDENT = re.compile(r"[ \t]*")
THINK = 0.12  # chance of a long pause at the start of a line
PAUSE_KEYS = 3.0  # a wait this many keys long is written as a pause event too
FILE_GAP_KEYS = 15.0  # between two files
MIN_BLOCK_KEYS = 12  # a smaller body is not worth retyping

# Tree-sitter node types of a block body, by grammar.
BODIES = {"python": ("block",), "javascript": ("statement_block",), "typescript": ("statement_block",),
          "tsx": ("statement_block",), "go": ("block",), "rust": ("block",), "java": ("block",),
          "c": ("compound_statement",), "cpp": ("compound_statement",)}
FUNCTION_HEADER = re.compile(r"\b(def|function|func|fn)\b")


def keystrokes(text: str) -> list[str]:
    """The keys that type `text`: characters, with each line break and the next line's
    indentation as one key (auto-indent), and leading indentation as one key (Tab)."""
    keys, i = [], INDENT.match(text).end()
    if i:
        keys.append(text[:i])
    while i < len(text):
        if (brk := LINE_BREAK.match(text, i)) is not None:
            j = INDENT.match(text, brk.end()).end()
            keys.append(text[i:j])
            i = j
        else:
            keys.append(text[i])
            i += 1
    return keys


class Typist:
    """Seeded inter-key timing: jitter, bursts, waits after punctuation and at line ends."""

    def __init__(self, speed_ms: float, rng: random.Random):
        self.speed, self.rng, self.burst = speed_ms, rng, 0

    def wait(self, previous: str, key: str) -> tuple[float, str | None]:
        """Milliseconds between the previous key and this one, and why, if it is a pause."""
        rng, speed = self.rng, self.speed
        factor = min(3.0, max(0.4, rng.lognormvariate(0.0, 0.3)))
        if self.burst > 0:
            self.burst -= 1
            factor *= 0.55
        elif previous[-1:] in (" ", ".", "(") and rng.random() < 0.15:
            self.burst = rng.randint(3, 8)  # a familiar word comes out in one go
        ms, reason = speed * factor, None
        if previous[-1:] in PUNCTUATION:
            ms += speed * rng.uniform(0.5, 1.5)
        if LINE_BREAK.match(key):
            ms += speed * rng.uniform(1.5, 5.0)
            reason = "line end"
        elif (not previous or LINE_BREAK.match(previous)) and rng.random() < THINK:
            ms += speed * rng.uniform(8.0, 25.0)
            reason = "think"
        return ms, reason

    def long(self, low: float, high: float) -> float:
        return self.speed * self.rng.uniform(low, high)


@dataclass
class Recorder:
    """Appends events at a running clock."""

    events: list[dict]
    t: float = 0.0
    speed: float = 100.0

    def wait(self, ms: float, reason: str | None) -> None:
        if reason is not None and ms >= PAUSE_KEYS * self.speed:
            self.events.append({"type": "pause", "t": round(self.t, 1), "ms": round(ms, 1),
                                "reason": reason})
        self.t += ms

    def change(self, uri: str, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        self.events.append({"type": "change", "t": round(self.t, 1), "uri": uri, "contentChanges": [
            {"range": {"start": position(*start), "end": position(*end)}, "text": text}]})

    def request(self, uri: str, at: tuple[int, int]) -> None:
        self.events.append({"type": "request", "t": round(self.t, 1), "uri": uri,
                            "position": position(*at), "trigger": "automatic"})

    def type(self, uri: str, at: tuple[int, int], text: str, typist: Typist) -> None:
        previous = ""
        for key in keystrokes(text):
            self.wait(*typist.wait(previous, key))
            self.change(uri, at, at, key)
            at = after_insert(*at, key)
            self.request(uri, at)
            previous = key


# --- choosing what to type -------------------------------------------------------------------

def line_offsets(lines: list[str]) -> list[int]:
    offsets, n = [], 0
    for line in lines:
        offsets.append(n)
        n += len(line)
    return offsets


def typing_region(text: str, keys: int | None, rng: random.Random) -> tuple[int, int]:
    """(start, end) indices of what type mode types: the whole file without `keys`; else about
    `keys` keystrokes from a paragraph start (a line after a blank one), ending at a line end."""
    if keys is None:
        return 0, len(text)
    lines = split_lines(text)
    offsets = line_offsets(lines)
    counts = [len(keystrokes(line)) for line in lines]
    remaining = list(itertools.accumulate(reversed(counts)))[::-1]  # keys from line i on
    starts = [i for i, line in enumerate(lines) if content(line).strip()
              and (i == 0 or not content(lines[i - 1]).strip()) and remaining[i] >= keys]
    if not starts:
        return 0, len(text)
    first = rng.choice(starts)
    last, typed = first, 0
    while last < len(lines) - 1 and typed + counts[last] < keys:
        typed += counts[last]
        last += 1
    return offsets[first], offsets[last] + len(content(lines[last]))


@dataclass(frozen=True)
class Block:
    first: int  # line index of the body's first line
    last: int  # and of its last line
    function: bool  # the body of a function or method


def blocks(text: str, language_id: str | None, path: str | None) -> list[Block]:
    """Multi-line block bodies on their own lines: tree-sitter's when the language has a
    grammar, else by indentation (a line ending in ':' or '{' and the more indented ones)."""
    from infill.syntax.languages import language_for

    language = language_for(language_id, path)
    if language is None or language.name not in BODIES:
        return indented_blocks(split_lines(text))
    found, stack = [], [language.parse(text.encode("utf-8", "surrogatepass")).root_node]
    python = language.name == "python"
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        parent = node.parent
        if node.type not in BODIES[language.name] or parent is None:
            continue
        first, last = node.start_point.row, node.end_point.row
        if not python:  # the lines strictly between `{` and `}`
            first, last = first + 1, last - 1
        if first > parent.start_point.row and last >= first:
            found.append(Block(first, last, any(w in parent.type for w in
                                                ("function", "method", "constructor"))))
    return sorted(found, key=lambda b: (b.first, b.last))


def indented_blocks(lines: list[str]) -> list[Block]:
    found = []
    indents = [len(INDENT.match(l).group()) if content(l).strip() else None for l in lines]
    for i, line in enumerate(lines):
        header = content(line).rstrip()
        if not header.endswith((":", "{")) or indents[i] is None:
            continue
        last = None
        for j in range(i + 1, len(lines)):
            if indents[j] is None:
                continue
            if indents[j] <= indents[i]:
                break
            last = j
        if last is not None:
            found.append(Block(i + 1, last, bool(FUNCTION_HEADER.search(header))))
    return found


def block_span(lines: list[str], block: Block) -> tuple[int, int]:
    """(start, end) indices of a body: from its first line's indentation to its last line's end."""
    offsets = line_offsets(lines)
    start = offsets[block.first] + INDENT.match(lines[block.first]).end()
    return start, offsets[block.last] + len(content(lines[block.last]))


def choose_blocks(text: str, language_id: str | None, path: str | None, edits: int,
                  keys: int | None, rng: random.Random) -> list[tuple[int, int]]:
    """Up to `edits` distinct bodies to retype, functions' first, each of at most `keys` keys."""
    lines = split_lines(text)
    spans = []
    for block in blocks(text, language_id, path):
        start, end = block_span(lines, block)
        n = len(keystrokes(text[start:end]))
        if n >= MIN_BLOCK_KEYS and (keys is None or n <= keys):
            spans.append((block.function, start, end))
    functions = [s for s in spans if s[0]]
    pool = functions if len(functions) >= edits else spans
    chosen = rng.sample(pool, min(edits, len(pool)))
    return [(start, end) for _, start, end in chosen]


# --- traces ----------------------------------------------------------------------------------

def index_position(text: str, index: int) -> tuple[int, int]:
    """The LSP position of an index into text."""
    return after_insert(0, 0, text[:index])


def read_source(path: Path) -> str:
    """The file as it is on disk (line breaks kept as they are)."""
    with path.open(encoding="utf-8", newline="") as f:
        return f.read()


def make_trace(paths: list[Path], mode: str = "type", speed_ms: float = 120.0, seed: int = 0,
               keys: int | None = None, edits: int = 1) -> list[dict]:
    """The events of one trace over the files, one after another."""
    from infill.syntax.languages import language_name

    if mode not in ("type", "edit"):
        raise ValueError(f"unknown mode {mode!r}: use type or edit")
    if speed_ms <= 0:
        raise ValueError("the speed must be a positive number of ms per key")
    rng = random.Random(seed)
    typist = Typist(speed_ms, rng)
    rec = Recorder([], 0.0, speed_ms)
    for n, path in enumerate(paths):
        text = read_source(path)
        uri, language = path.resolve().as_uri(), language_name(None, str(path)) or "plaintext"
        if n:
            rec.wait(typist.long(FILE_GAP_KEYS, 2 * FILE_GAP_KEYS), "next file")
        meta = {"source": str(path), "mode": mode, "speedMs": speed_ms, "seed": seed}
        if mode == "type":
            start, end = typing_region(text, keys, rng)
            rec.events.append({"type": "open", "t": round(rec.t, 1), "uri": uri,
                               "languageId": language, "version": 1, "text": text[:start], **meta})
            rec.type(uri, index_position(text, start), text[start:end], typist)
            continue
        rec.events.append({"type": "open", "t": round(rec.t, 1), "uri": uri,
                           "languageId": language, "version": 1, "text": text, **meta})
        spans = choose_blocks(text, language, str(path), edits, keys, rng)
        if not spans:
            raise ValueError(f"{path}: no block body of {MIN_BLOCK_KEYS} to "
                             f"{keys or 'any number of'} keystrokes to retype")
        for start, end in spans:  # each edit gives the file back: positions stay valid
            rec.wait(typist.long(8, 16), "navigate")
            at = index_position(text, start)
            rec.change(uri, at, index_position(text, end), "")
            rec.request(uri, at)
            rec.wait(typist.long(8, 25), "think")
            rec.type(uri, at, text[start:end], typist)
    return rec.events
