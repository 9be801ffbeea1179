"""Cleaning up raw completions, SAFIM-style: block ends, suffix duplicates, syntactic truncation.

Models rarely stop where the user wants: an AR model writes past the end of the block, repeats
the lines that follow the cursor, or stops mid-statement; a diffusion model fills a fixed-size gap.
These functions cut such output back to what fits between prefix and suffix.
"""

from __future__ import annotations

from collections.abc import Sequence

from .brackets import (
    CLOSERS,
    brackets,
    depth_at_line_starts,
    indentation,
    is_blank,
    outer_closers,
    token_style,
)
from .languages import Language, resolve
from .validity import check

# Truncation tries every line boundary, each an incremental parse; this bounds the work for
# runaway output (a completion this long is cut here before anything else).
MAX_COMPLETION_LINES = 256

# Closing punctuation the suffix may already provide right after the cursor.
_CLOSING_PUNCTUATION = CLOSERS + ";,:" + "\"'`"
# What ends a line that opens a block, per lexical style (see brackets.py).
_BLOCK_OPENERS = {"python": (":",), "js": ("{",), "c": ("{",), "generic": (":", "{")}
_LINE_COMMENT = {"python": "#", "js": "//", "c": "//"}


def truncate(
    prefix: str, completion: str, suffix: str, language: Language | str | None, multiline: bool
) -> str:
    """The longest line-prefix of `completion` that `check` accepts; "" when there is none.

    Single-line: only the text up to the first newline is considered. Multi-line: the completion
    is first cut where it leaves the block the cursor is in (`cut_at_block_exit`), then trailing
    lines are dropped until prefix + completion + suffix has no new syntax error.
    """
    language = resolve(language)
    if not multiline:
        text = completion.split("\n", 1)[0].rstrip("\r")
        return text if check(prefix, text, suffix, language).valid else ""
    text = cut_at_block_exit(prefix, limit_lines(completion), language)
    for candidate in _line_cuts(text):
        if check(prefix, candidate, suffix, language).valid:
            return candidate
    return ""


def _line_cuts(text: str) -> list[str]:
    """`text`, then `text` cut before each of its newlines, longest first; blank cuts left out."""
    cuts = [text] + [text[:i].rstrip("\r") for i in range(len(text) - 1, -1, -1) if text[i] == "\n"]
    return [cut for cut in dict.fromkeys(cuts) if cut.strip()]


def limit_lines(text: str, count: int = MAX_COMPLETION_LINES) -> str:
    """The first `count` lines of `text`."""
    return "\n".join(text.split("\n", count)[:count])


# -- where the block the cursor is in ends ------------------------------------------------------


def cut_at_block_exit(prefix: str, completion: str, language: Language | str | None) -> str:
    """Cut a multi-line completion where it leaves the block the cursor is in.

    Python and unknown languages (indentation): before the first line, outside brackets the
    completion opened, that is indented less than the block: the block of the first non-blank
    line of cursor line + completion, or, when the code before the cursor ends with a block opener
    (`def f():|`), the body that opener starts.
    Brace languages: at the `}` that closes the block the cursor is in. A line with nothing but
    that `}` and other closers (`});`) is kept, because the suffix may lack it (validity trimming
    drops it when the suffix has it); `} else {` starts a block of its own and is cut before.
    """
    language = resolve(language)
    if language is not None and language.block_style == "brace":
        return _cut_after_block_close(completion, token_style(language))
    return _cut_at_dedent(prefix, completion, token_style(language))


def _cut_after_block_close(completion: str, style: str) -> str:
    depth = 0
    for index, bracket in brackets(completion, style):
        if bracket == "{":
            depth += 1
        elif bracket == "}":
            depth -= 1
            if depth < 0:
                line_end = completion.find("\n", index)
                line_end = len(completion) if line_end < 0 else line_end
                if all(ch in _CLOSING_PUNCTUATION or ch.isspace() for ch in completion[index:line_end]):
                    return completion[:line_end]  # `}` or `});`: keep it, the suffix may lack it
                return completion[:index].rstrip()  # `} else {` starts another block: not ours
    return completion


def _cut_at_dedent(prefix: str, completion: str, style: str) -> str:
    cursor_line = prefix.rsplit("\n", 1)[-1]
    lines = completion.split("\n")
    # The cursor line as it will read, then the completion's own lines.
    full_lines = [cursor_line + lines[0]] + lines[1:]
    anchor = next(
        (i for i, line in enumerate(full_lines) if not is_blank(line) and not _is_comment(line, style)), None
    )
    if anchor is None:
        return completion
    if not is_blank(cursor_line) and _ends_with(cursor_line, _BLOCK_OPENERS[style], style):
        floor = indentation(cursor_line) + 1  # `def f():|`: the block is the body it opens
    else:
        floor = indentation(full_lines[anchor])
    depths = depth_at_line_starts("\n".join(full_lines), style)
    for i in range(anchor + 1, len(full_lines)):
        line = full_lines[i]
        # Lines inside brackets (call arguments, a closing `)`) may sit at any indentation, and
        # comments anywhere: neither ends a block.
        if is_blank(line) or depths[i] > 0 or _is_comment(line, style):
            continue
        if indentation(line) < floor:
            return "\n".join(lines[:i]).rstrip()
    return completion


def _is_comment(line: str, style: str) -> bool:
    markers = (_LINE_COMMENT[style],) if style in _LINE_COMMENT else ("#", "//")
    return line.lstrip().startswith(markers)


def _ends_with(line: str, endings: tuple[str, ...], style: str) -> bool:
    """Does the code on `line` (a trailing comment aside) end with one of `endings`?"""
    comment = _LINE_COMMENT.get(style)
    code = line.split(comment, 1)[0] if comment else line
    return code.rstrip().endswith(endings)


# -- single line or multi-line ----------------------------------------------------------------


def is_multiline_position(prefix: str, suffix: str, language: Language | str | None) -> bool:
    """Should the completion at this cursor span several lines?

    The rule, from the text around the cursor. An opener is what ends a line that more lines
    must follow: `:` (Python), `{` (brace languages), both for unknown languages, and an open
    `(` or `[` everywhere. Its body is empty when the next non-blank line is not indented deeper
    than the opener's line (or there is none).

    1. Non-whitespace text after the cursor on its line -> single line (finish that line).
    2. The cursor line has code before the cursor -> multi-line only if that code ends with an
       opener whose body is empty; otherwise single line.
    3. The cursor line is empty or whitespace ->
       - multi-line if the previous non-blank line ends with an opener whose body is empty;
       - multi-line at the end of the file, before a blank line, or before a dedent (the next
         non-blank line is indented less than the cursor, e.g. a closing `}`);
       - otherwise (the next line is ordinary code at the same or deeper indentation) single line.
    """
    language = resolve(language)
    style = token_style(language)
    openers = _BLOCK_OPENERS[style] + ("(", "[")
    rest_of_line, _, after = suffix.partition("\n")
    if rest_of_line.strip():
        return False
    before, _, cursor_line = prefix.rpartition("\n")
    next_line = after.split("\n", 1)[0]
    next_code = next((line for line in _lines(after) if not is_blank(line)), None)

    def body_is_empty(opener_line: str) -> bool:
        return next_code is None or indentation(next_code) <= indentation(opener_line)

    if cursor_line.strip():
        return _ends_with(cursor_line, openers, style) and body_is_empty(cursor_line)

    previous = before.rstrip().rsplit("\n", 1)[-1]  # the last non-blank line before the cursor
    if previous and _ends_with(previous, openers, style) and body_is_empty(previous):
        return True
    if next_code is None or is_blank(next_line):
        return True
    return indentation(next_code) < indentation(cursor_line)


def _lines(text: str):
    """The lines of `text`, one at a time (the suffix may be a whole file; usually one is enough)."""
    start = 0
    while start <= len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        yield text[start:end]
        start = end + 1


# -- duplicates of the suffix -----------------------------------------------------------------


def drop_suffix_duplicates(completion: str, suffix: str, language: Language | str | None = None) -> str:
    """Remove what the suffix already provides from the end of the completion.

    - Trailing completion lines equal (ignoring surrounding whitespace and blank lines) to the
      first lines after the cursor line: the model rewrote the code that follows. A dropped line's
      closing brackets must close brackets opened before the completion, not inside it, so the `}`
      of an `if` block the completion wrote is kept even when the suffix starts with `}`. In Python
      (`language`) indentation must match too: `break` one level deeper is another statement.
    - Trailing closing punctuation (`)`, `]`, `}`, `;`, `,`, `:`, an unpaired quote) that the rest
      of the cursor line starts with: `foo(a, b)` before a suffix `)` becomes `foo(a, b`.
    """
    language = resolve(language)
    indent_sensitive = language is not None and language.block_style == "indent"
    return _drop_duplicate_closers(_drop_duplicate_lines(completion, suffix, indent_sensitive), suffix)


def _drop_duplicate_lines(completion: str, suffix: str, indent_sensitive: bool) -> str:
    lines = completion.split("\n")
    code = [i for i, line in enumerate(lines) if not is_blank(line)]
    following = [line for line in suffix.split("\n")[1:] if not is_blank(line)][: len(code)]
    outer = outer_closers(completion)
    # The last closer that closes a bracket the completion itself opened.
    last_own_closer = max(
        (i for i, ch in brackets(completion) if ch in CLOSERS and i not in outer), default=-1
    )
    line_starts = [0]
    for line in lines[:-1]:
        line_starts.append(line_starts[-1] + len(line) + 1)

    def same(index: int, suffix_line: str) -> bool:
        line = lines[index]
        if line.strip() != suffix_line.strip():
            return False
        # The completion's first line continues the cursor line: its indentation is in the prefix.
        return not indent_sensitive or index == 0 or indentation(line) == indentation(suffix_line)

    for k in range(min(len(code), len(following)), 0, -1):
        tail = code[-k:]
        if not all(same(index, line) for index, line in zip(tail, following[:k], strict=True)):
            continue
        if last_own_closer >= line_starts[tail[0]]:
            continue  # those lines close brackets the completion itself opened
        return "\n".join(lines[: tail[0]]).rstrip()
    return completion


def _drop_duplicate_closers(completion: str, suffix: str) -> str:
    rest_of_line = suffix.split("\n", 1)[0]
    provided = ""
    for ch in rest_of_line:
        if ch in _CLOSING_PUNCTUATION:
            provided += ch
        elif not ch.isspace():
            break
    if not provided:
        return completion

    # The completion's trailing closing punctuation (X), ignoring whitespace. Brackets must close
    # something opened before the completion; a quote must be unpaired on its line.
    outer = outer_closers(completion)
    last_line = completion.rsplit("\n", 1)[-1]
    positions: list[int] = []
    i = len(completion)
    while i > 0:
        ch = completion[i - 1]
        if ch.isspace():
            pass
        elif (
            (ch in CLOSERS and i - 1 in outer)
            or ch in ";,:"
            or (ch in "\"'`" and last_line.count(ch) % 2 == 1)
        ):
            positions.insert(0, i - 1)
        else:
            break
        i -= 1
    closing = "".join(completion[p] for p in positions)

    # Drop the last k of them when the text then still closes in the same order: the suffix's
    # closers stand in for the dropped ones (closing + provided[len(closing):] is the intent).
    for k in range(min(len(closing), len(provided)), 0, -1):
        if closing[: len(closing) - k] + provided == closing + provided[len(closing) :]:
            return completion[: positions[len(closing) - k]]
    return completion


# -- ranking ----------------------------------------------------------------------------------


def rank(candidates: Sequence[str], prefix: str, suffix: str, language: Language | str | None) -> list[str]:
    """Syntactically valid candidates first; order otherwise unchanged (the sort is stable)."""
    language = resolve(language)
    return sorted(candidates, key=lambda text: not check(prefix, text, suffix, language).valid)
