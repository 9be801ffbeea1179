"""What a caller asks for and what it gets back: the types every entry point shares."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from speculative.cancel import Cancelled  # noqa: F401  (one exception for every engine)


class CancelToken:
    """A flag a decoder checks once per step; set from any thread, optionally with a deadline."""

    def __init__(self, deadline: float | None = None):
        self._event = threading.Event()
        self.deadline = deadline  # time.monotonic() value

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        if self._event.is_set():
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled()


ENGINES = ("auto", "speculative", "diffusion")
MAX_CANDIDATES = 16


@dataclass
class InfillRequest:
    prefix: str
    suffix: str = ""
    language: str | None = None  # LSP languageId, e.g. "python"
    path: str | None = None  # used for the language when language is None
    engine: str = "auto"
    max_tokens: int = 64
    multiline: bool | None = None  # None: decided from the syntax around the cursor
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    candidates: int = 1  # different completions wanted when sampling (temperature > 0)
    cancel: CancelToken = field(default_factory=CancelToken)

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}: use one of {', '.join(ENGINES)}")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")
        if not 1 <= self.candidates <= MAX_CANDIDATES:
            raise ValueError(f"candidates must be 1 to {MAX_CANDIDATES}")


@dataclass
class Completion:
    text: str
    engine: str
    model: str
    tokens: int  # tokens generated (before truncation by the syntax guard)
    forwards: int  # model forward passes
    ms: float
    valid: bool = True  # the syntax guard's verdict on prefix + text + suffix
    truncated: bool = False

    def to_json(self) -> dict:
        return {"completion": self.text, "engine": self.engine, "model": self.model,
                "tokens": self.tokens, "forwards": self.forwards, "ms": round(self.ms, 2),
                "valid": self.valid, "truncated": self.truncated}
