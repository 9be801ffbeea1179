"""Fitting a long document into a model's context, and the text-level stop rules.

Both engines keep the text nearest the cursor: the end of the prefix and the start of the
suffix, the suffix getting at most a third of the room (what precedes the cursor predicts the
completion better than what follows it).
"""

from __future__ import annotations

from collections.abc import Callable

CHARS_PER_TOKEN_GUESS = 4.0
SUFFIX_SHARE = 3  # the suffix gets at most 1/SUFFIX_SHARE of the room


def clip_text(prefix: str, suffix: str, max_chars: int) -> tuple[str, str]:
    """Cut the prefix on the left and the suffix on the right to max_chars in total."""
    keep_suffix = min(len(suffix), max(max_chars // SUFFIX_SHARE, max_chars - len(prefix)))
    keep_prefix = min(len(prefix), max_chars - keep_suffix)
    clipped_prefix = prefix[len(prefix) - keep_prefix:]
    if keep_prefix < len(prefix) and "\n" in clipped_prefix:
        clipped_prefix = clipped_prefix[clipped_prefix.index("\n") + 1:]  # start on a line
    return clipped_prefix, suffix[:keep_suffix]


def fit_to_tokens(prefix: str, suffix: str, budget: int,
                  count: Callable[[str, str], int]) -> tuple[str, str]:
    """Clip until count(prefix, suffix) <= budget tokens; starts from a character guess, so
    tokenizing a multi-megabyte file never happens."""
    max_chars = int(budget * CHARS_PER_TOKEN_GUESS)
    while True:
        p, s = clip_text(prefix, suffix, max_chars)
        n = count(p, s)
        if n <= budget or max_chars <= 16:
            return p, s
        max_chars = int(max_chars * budget / n * 0.95)


MIN_LOOP_LINE = 8  # shorter repeated lines (`)`, `pass`, `end`) are ordinary code
MAX_LOOP_BLOCK = 4  # a loop of up to this many lines, written twice in a row, ends a completion


def first_code_line(suffix: str) -> str:
    """The first non-blank line of the suffix after the cursor's own line, stripped."""
    for line in suffix.split("\n")[1:]:
        if line.strip():
            return line.strip()
    return ""


def _loop_start(lines: list[str]) -> int | None:
    """Where the last lines begin a second copy of the block of 1 to MAX_LOOP_BLOCK lines just
    before them, word for word (the indentation aside: a completion's first line starts at the
    cursor, after its indentation), the block being non-trivial; else None. A small model
    caught in a loop writes the same lines again and again (`self.x = x`, `self.y = y`, ...);
    twice the same block in a row is rare enough in real code to give up there."""
    stripped = [line.strip() for line in lines]
    for k in range(1, min(MAX_LOOP_BLOCK, len(lines) // 2) + 1):
        block, again = stripped[-2 * k:-k], stripped[-k:]
        if block == again and len("".join(block)) >= MIN_LOOP_LINE * k:
            return len(lines) - k
    return None


def _ends_paragraph(suffix: str) -> bool:
    """The rest of the cursor's line and the next line are blank, and code follows."""
    parts = suffix.split("\n", 2)
    return len(parts) == 3 and not parts[0].strip() and not parts[1].strip() \
        and bool(parts[2].strip())


def cut_completion(text: str, suffix: str, multiline: bool, max_lines: int) -> tuple[str, bool]:
    """(text cut to the request's shape, whether decoding can stop now).

    Single-line: up to the first newline. Multi-line: at most max_lines lines, and nothing
    from the line that repeats the suffix's next line of code on (the model ran into the suffix)
    or from a second copy of the lines just before it (`_loop_start`).
    Where a blank line follows the cursor's line, the cursor ends a paragraph: a blank line
    after written code ends the completion too, which would otherwise start a paragraph of its
    own before the suffix's (a new method before the next one, say).
    """
    if not multiline:
        if "\n" in text:
            return text.split("\n", 1)[0], True
        return text, False
    lines = text.split("\n")
    complete_lines = lines[:-1]  # the last one may still grow
    anchor = first_code_line(suffix) if suffix.split("\n", 1)[0].strip() == "" else ""
    paragraph_ends = _ends_paragraph(suffix)
    written = False  # a line of code so far
    for i, line in enumerate(complete_lines):
        if anchor and line.strip() == anchor:
            return "\n".join(lines[:i]).rstrip(" \t"), True
        start = _loop_start(complete_lines[:i + 1])
        if start is not None:
            return "\n".join(lines[:start]), True
        if paragraph_ends and written and not line.strip():
            return "\n".join(lines[:i]), True
        written = written or bool(line.strip())
    if len(complete_lines) >= max_lines:
        return "\n".join(lines[:max_lines]), True
    return text, False
