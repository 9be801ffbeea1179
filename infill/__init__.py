"""Local fill-in-the-middle code completion.

    >>> import infill
    >>> infill.complete(infill.InfillRequest(prefix="def add(a, b):\\n    return ", suffix="\\n"))

`complete` fills the gap between prefix and suffix with the engine the router picks (or the one
asked for), guarded by the tree-sitter syntax check, on the shipped default models unless
`configure` names others.
"""

from __future__ import annotations

from infill.request import Cancelled, CancelToken, Completion, InfillRequest

__all__ = ["complete", "configure", "InfillRequest", "Completion", "CancelToken", "Cancelled"]

_engines = None


def configure(config=None):
    """Replace the process-wide engines (models load lazily on first use)."""
    global _engines
    from infill.engines import Engines

    _engines = Engines(config)
    return _engines


def complete(request: InfillRequest) -> list[Completion]:
    if _engines is None:
        configure()
    return _engines.complete(request)
