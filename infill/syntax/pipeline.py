"""The one entry point the engines call: clean, truncate and validate a raw completion.

It must never fail a request: any exception (a grammar that does not load, an input nobody
thought of) falls back to the grammar-free rules, and failing those, to the text as it came.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from .cleanup import cut_at_block_exit, drop_suffix_duplicates, is_multiline_position, limit_lines, truncate
from .languages import Language, language_for


@dataclass(frozen=True)
class GuardResult:
    """text: the completion to show ("" when nothing survives); valid: text is non-empty and adds
    no syntax error; truncated: text differs from the raw completion; reason: what was done."""

    text: str
    valid: bool
    truncated: bool
    reason: str


def guard(
    prefix: str,
    suffix: str,
    completion: str,
    language_id: str | None,
    path: str | None = None,
    multiline: bool | None = None,
) -> GuardResult:
    """Clean `completion` for the cursor between `prefix` and `suffix`; never raises.

    Steps: cut at a NUL character; keep the first line (single-line position) or cut where the
    completion leaves the cursor's block (multi-line); drop what duplicates the suffix; keep the
    longest line-prefix that adds no syntax error. `multiline` None decides from the text around the cursor
    (`is_multiline_position`). The language comes from `language_id`, else from `path`'s
    extension; unknown languages get the grammar-free bracket and indentation rules.
    """
    prefix, suffix, completion = _as_text(prefix), _as_text(suffix), _as_text(completion)
    language = None
    try:
        language = language_for(language_id, path)
        return _guard(prefix, suffix, completion, language, multiline)
    except Exception as error:  # noqa: BLE001 -- the request must survive a guard bug
        failure = f"{type(error).__name__}: {error}"
    try:
        result = _guard(prefix, suffix, completion, None, multiline)
        return replace(result, reason=f"{result.reason} (generic rules after {failure})")
    except Exception as error:  # noqa: BLE001
        return GuardResult(
            completion, False, False, f"unchecked ({failure}; {type(error).__name__}: {error})"
        )


def guard_candidates(
    prefix: str,
    suffix: str,
    completions: Sequence[str],
    language_id: str | None,
    path: str | None = None,
    multiline: bool | None = None,
) -> list[GuardResult]:
    """`guard` for each candidate, valid results first, otherwise in the given order."""
    results = [guard(prefix, suffix, text, language_id, path, multiline) for text in completions or ()]
    return sorted(results, key=lambda result: not result.valid)


def _guard(
    prefix: str, suffix: str, completion: str, language: Language | None, multiline: bool | None
) -> GuardResult:
    if multiline is None:
        multiline = is_multiline_position(prefix, suffix, language)
    steps = []

    # No source text contains NUL: a model that emits one has derailed, and the rest is noise.
    raw, completion = completion, completion.split("\x00", 1)[0]
    if completion != raw:
        steps.append("cut at a NUL character")

    if multiline:
        text = cut_at_block_exit(prefix, limit_lines(completion), language)
        if text != completion:
            steps.append("cut where the block ends")
    else:
        text = completion.split("\n", 1)[0].rstrip("\r")
        if text != completion:
            steps.append("kept the first line")

    deduped = drop_suffix_duplicates(text, suffix, language)
    if deduped != text:
        steps.append("dropped what the suffix repeats")

    text = truncate(prefix, deduped, suffix, language, multiline)
    if not text.strip():
        reason = "nothing left" if not deduped.strip() else "no syntactically valid line prefix"
        return GuardResult("", False, raw != "", "; ".join(steps + [reason]))
    if text != deduped:
        steps.append("dropped trailing lines with syntax errors")
    mode = "multi-line" if multiline else "single-line"
    judge = language.name if language is not None else "generic rules"
    return GuardResult(text, True, text != raw, "; ".join([f"{mode}, {judge}"] + steps))


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else str(value)
