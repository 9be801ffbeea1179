"""Grammar-free text rules: brackets outside strings and comments, and indentation.

They serve three purposes: the whole guard for languages without a grammar, a second opinion
where the grammar has nothing to say (the cursor sits inside a region the parser already gave up
on), and the quick scans truncation needs (block ends, suffix duplicates) on partial code that
tree-sitter cannot parse on its own.
"""

from __future__ import annotations

import re

OPENERS = "([{"
CLOSERS = ")]}"
PAIRS = {")": "(", "]": "[", "}": "{"}

# Skipped spans: what may hide brackets. Strings end at the line end when unterminated, so one
# stray quote cannot swallow the rest of a document; block comments and multi-line strings run on.
_STRING = r'"(?:\\.|[^"\\\n])*"'
_SQ_STRING = r"'(?:\\.|[^'\\\n])*'"
# C-family `'` starts a character literal (one character or one escape), never a string: Rust
# lifetimes (`&'a str`) must not hide the brackets between two of them.
_CHAR = r"'(?:\\[^\n]{1,10}?|[^'\\\n])'"
_BRACKET = r"[()\[\]{}]"

_LINE_COMMENT = r"//[^\n]*"
_BLOCK_COMMENT = r"/\*[\s\S]*?(?:\*/|\Z)"
_SKIP_PATTERNS = {
    "python": [r'"""[\s\S]*?(?:"""|\Z)', r"'''[\s\S]*?(?:'''|\Z)", r"#[^\n]*", _STRING, _SQ_STRING],
    # Template literals (JS) and raw strings (Go) may span lines.
    "js": [_LINE_COMMENT, _BLOCK_COMMENT, _STRING, _SQ_STRING, r"`(?:\\.|[^`\\])*(?:`|\Z)"],
    "c": [_LINE_COMMENT, _BLOCK_COMMENT, _STRING, _CHAR, r"`[^`]*(?:`|\Z)"],
    "generic": [_STRING, _SQ_STRING, r"`[^`\n]*`"],
}
_TOKEN_RE = {
    style: re.compile("|".join(f"(?:{p})" for p in patterns) + f"|({_BRACKET})")
    for style, patterns in _SKIP_PATTERNS.items()
}


def token_style(language) -> str:
    """The lexical style of a Language: "python", "js", "c", or "generic" for language None."""
    return "generic" if language is None else language.style


def brackets(text: str, style: str = "generic"):
    """Yield (index, bracket) for every bracket outside strings and comments."""
    for match in _TOKEN_RE[style].finditer(text):
        if match.group(1) is not None:
            yield match.start(1), match.group(1)


def unmatched_brackets(text: str, style: str = "generic") -> list[int]:
    """Indices of closers that close nothing and of openers never closed, in order."""
    stack: list[tuple[int, str]] = []
    unmatched = []
    for index, ch in brackets(text, style):
        if ch in OPENERS:
            stack.append((index, ch))
        elif any(opener == PAIRS[ch] for _, opener in stack):
            # A closer that matches something deeper closes it; what lies above was never closed.
            while True:
                opened_at, opener = stack.pop()
                if opener == PAIRS[ch]:
                    break
                unmatched.append(opened_at)
        else:
            unmatched.append(index)
    unmatched.extend(index for index, _ in stack)
    return sorted(unmatched)


def bracket_problems(text: str, style: str = "generic") -> int:
    """Unmatched closers + unclosed openers: 0 for a balanced text."""
    return len(unmatched_brackets(text, style))


def outer_closers(text: str, style: str = "generic") -> set[int]:
    """Indices of closers that close nothing opened inside `text` (they close the prefix's brackets)."""
    stack: list[str] = []
    outer = set()
    for index, ch in brackets(text, style):
        if ch in OPENERS:
            stack.append(ch)
        elif stack:
            stack.pop()
        else:
            outer.add(index)
    return outer


def depth_at_line_starts(text: str, style: str = "generic") -> list[int]:
    """Bracket depth (relative to the start of `text`, may go negative) at the start of each line."""
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    depths = [0] * len(line_starts)
    events = list(brackets(text, style))
    depth, event = 0, 0
    for line, start in enumerate(line_starts):
        while event < len(events) and events[event][0] < start:
            depth += 1 if events[event][1] in OPENERS else -1
            event += 1
        depths[line] = depth
    return depths


def indentation(line: str) -> int:
    """Width of the leading whitespace, tabs to multiples of 8 as Python counts them."""
    stripped = line.lstrip(" \t")
    return len(line[: len(line) - len(stripped)].expandtabs(8))


def is_blank(line: str) -> bool:
    return not line.strip()
