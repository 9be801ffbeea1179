"""Where the gap goes: character-level spans shaped like the requests editors send.

Each sampler takes a text and a random generator and returns (start, end) character offsets.
Offsets are characters, not tokens, so the model learns to complete from a cursor that sits
inside a word, exactly as it does at inference where prefix and suffix are tokenized apart.
"""

from __future__ import annotations

import random

# (name, weight). Whole lines and the rest of a line dominate: that is what editors ask for.
SPAN_KINDS = (
    ("line", 0.32),
    ("rest_of_line", 0.18),
    ("lines", 0.16),
    ("inside_line", 0.10),
    ("block", 0.10),
    ("uniform", 0.10),
    ("empty", 0.04),
)


def _line_bounds(text: str) -> list[tuple[int, int]]:
    """(start, end) of each line, end excluding the newline."""
    bounds, start = [], 0
    for line in text.split("\n"):
        bounds.append((start, start + len(line)))
        start += len(line) + 1
    return bounds


def _code_lines(text: str) -> list[tuple[int, int]]:
    return [(s, e) for s, e in _line_bounds(text) if text[s:e].strip()]


def _indent(text: str, start: int, end: int) -> int:
    line = text[start:end]
    return len(line) - len(line.lstrip(" "))


def span_line(text: str, rng: random.Random) -> tuple[int, int] | None:
    """A whole non-blank line; half the time its indentation stays in the prefix."""
    lines = _code_lines(text)
    if not lines:
        return None
    s, e = rng.choice(lines)
    if rng.random() < 0.5:
        s += _indent(text, s, e)
    return s, e


def span_rest_of_line(text: str, rng: random.Random) -> tuple[int, int] | None:
    lines = _code_lines(text)
    if not lines:
        return None
    s, e = rng.choice(lines)
    s += _indent(text, s, e)
    return rng.randint(s, e - 1), e


def span_lines(text: str, rng: random.Random) -> tuple[int, int] | None:
    """2 to 8 consecutive lines."""
    bounds = _line_bounds(text)
    if len(bounds) < 3:
        return None
    count = rng.randint(2, min(8, len(bounds) - 1))
    first = rng.randrange(0, len(bounds) - count + 1)
    s, e = bounds[first][0], bounds[first + count - 1][1]
    if not text[s:e].strip():
        return None
    if rng.random() < 0.5:
        s += _indent(text, *bounds[first])
    return s, e


def span_inside_line(text: str, rng: random.Random) -> tuple[int, int] | None:
    """A short span with code after it on the same line (completing inside an expression)."""
    lines = [(s, e) for s, e in _code_lines(text) if e - s >= 6]
    if not lines:
        return None
    s, e = rng.choice(lines)
    s += _indent(text, s, e)
    if e - s < 3:
        return None
    start = rng.randint(s, e - 2)
    return start, rng.randint(start + 1, min(e - 1, start + 24))


def span_block(text: str, rng: random.Random) -> tuple[int, int] | None:
    """The body of a block: the lines after one ending in ':' that are indented deeper."""
    bounds = _line_bounds(text)
    openers = [i for i, (s, e) in enumerate(bounds[:-1]) if text[s:e].rstrip().endswith(":")]
    if not openers:
        return None
    i = rng.choice(openers)
    base = _indent(text, *bounds[i])
    j = i + 1
    while j < len(bounds) and j - i <= 15:
        s, e = bounds[j]
        if text[s:e].strip() and _indent(text, s, e) <= base:
            break
        j += 1
    while j - 1 > i and not text[bounds[j - 1][0]:bounds[j - 1][1]].strip():
        j -= 1
    if j == i + 1:
        return None
    start, end = bounds[i + 1][0], bounds[j - 1][1]
    if rng.random() < 0.5:
        start += _indent(text, *bounds[i + 1])
    return start, end


def span_uniform(text: str, rng: random.Random) -> tuple[int, int] | None:
    """Bavarian et al.'s uniform split, capped so the middle stays editor-sized."""
    if len(text) < 2:
        return None
    a = rng.randrange(len(text))
    return a, min(len(text), a + rng.randint(1, 400))


def span_empty(text: str, rng: random.Random) -> tuple[int, int] | None:
    """Nothing is missing: the model must learn to stop at once."""
    lines = _code_lines(text)
    if not lines:
        return None
    _, e = rng.choice(lines)
    return e, e


SAMPLERS = {
    "line": span_line,
    "rest_of_line": span_rest_of_line,
    "lines": span_lines,
    "inside_line": span_inside_line,
    "block": span_block,
    "uniform": span_uniform,
    "empty": span_empty,
}


def sample_span(text: str, rng: random.Random) -> tuple[int, int]:
    """An editor-shaped gap in text; falls back to a uniform split if the kind does not fit."""
    names = [k for k, _ in SPAN_KINDS]
    weights = [w for _, w in SPAN_KINDS]
    for _ in range(4):
        span = SAMPLERS[rng.choices(names, weights)[0]](text, rng)
        if span is not None:
            return span
    a = rng.randrange(len(text) + 1)
    return a, a


def window(text: str, rng: random.Random, max_chars: int) -> str:
    """A random stretch of at most max_chars, starting at a line start."""
    if len(text) <= max_chars:
        return text
    start = rng.randrange(0, len(text) - max_chars + 1)
    line_start = text.rfind("\n", 0, start) + 1
    if start - line_start < 200:
        start = line_start
    end = min(len(text), start + max_chars)
    if end < len(text):  # end on a line boundary, as files do
        cut = text.rfind("\n", start, end)
        if cut > start + max_chars // 2:
            end = cut + 1
    return text[start:end]
