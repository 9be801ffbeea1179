"""The tree-sitter syntax guard: an inserted completion must not add a syntax error.

What the engines call (batch, server and benchmarks alike), in pipeline.py:

    guard(prefix, suffix, completion, language_id, path=None, multiline=None) -> GuardResult
    guard_candidates(prefix, suffix, completions, language_id, path=None, multiline=None)

The pieces it is built from:

    language_for(language_id, path=None) -> Language | None         languages.py
    check(prefix, completion, suffix, language) -> SyntaxVerdict     validity.py
    truncate, cut_at_block_exit, drop_suffix_duplicates,
    is_multiline_position, rank                                      cleanup.py
    grammar-free bracket and indentation rules                       brackets.py
    utf16_offset_to_index and friends (LSP positions)                positions.py

`python -m infill.syntax.bench` measures a full parse against an incremental check.
"""

from .cleanup import cut_at_block_exit, drop_suffix_duplicates, is_multiline_position, rank, truncate
from .languages import Language, language_for
from .pipeline import GuardResult, guard, guard_candidates
from .positions import (
    index_to_position,
    index_to_utf16_offset,
    position_to_index,
    split_at_position,
    utf16_len,
    utf16_offset_to_index,
)
from .validity import ErrorSpan, SyntaxVerdict, check, generic_check

__all__ = [
    "ErrorSpan",
    "GuardResult",
    "Language",
    "SyntaxVerdict",
    "check",
    "cut_at_block_exit",
    "drop_suffix_duplicates",
    "generic_check",
    "guard",
    "guard_candidates",
    "index_to_position",
    "index_to_utf16_offset",
    "is_multiline_position",
    "language_for",
    "position_to_index",
    "rank",
    "split_at_position",
    "truncate",
    "utf16_len",
    "utf16_offset_to_index",
]
