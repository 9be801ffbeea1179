"""Which engine serves a request, and whether its completion may span several lines.

`auto` sends a gap that is bounded by code on its own line (the cursor has text after it on
the same line, e.g. inside a call's parentheses) to the diffusion engine, which sees prefix and
suffix at once; a cursor at the end of a line or on an empty line goes to the AR engine, which
writes left to right and stops by itself.
"""

from __future__ import annotations

from infill.request import InfillRequest


def choose_engine(request: InfillRequest) -> str:
    if request.engine != "auto":
        return request.engine
    rest_of_line = request.suffix.split("\n", 1)[0]
    return "diffusion" if rest_of_line.strip() else "speculative"


def is_multiline(request: InfillRequest) -> bool:
    """The request's own choice, else the syntax around the cursor decides
    (`syntax.is_multiline_position`)."""
    if request.multiline is not None:
        return request.multiline
    from infill import syntax  # tree-sitter: only when a request is shaped

    language = syntax.language_for(request.language, request.path)
    return syntax.is_multiline_position(request.prefix, request.suffix, language)
