"""The type-through cache: a user typing the start of the suggestion on screen gets the rest of
it at once, without the model (Tabby and Copilot do the same; it is most of what a user sees
while typing along with ghost text).

One entry per document: the last suggestions shown there, with the text just before and just
after the cursor they were made for. A request hits when the text after its cursor is the same
and the text before it is the old text plus the start of a suggestion.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

EDGE = 256  # characters compared on each side of the cursor
MAX_DOCUMENTS = 256


@dataclass(frozen=True)
class Shown:
    prefix_tail: str
    suffix_head: str
    texts: tuple[str, ...]


class TypeThroughCache:
    def __init__(self, max_documents: int = MAX_DOCUMENTS):
        self._entries: OrderedDict[str, Shown] = OrderedDict()
        self.max_documents = max_documents
        self.hits = 0

    def store(self, uri: str, prefix: str, suffix: str, texts: list[str]) -> None:
        texts = tuple(t for t in texts if t)
        if not texts:
            self._entries.pop(uri, None)
            return
        self._entries[uri] = Shown(prefix[-EDGE:], suffix[:EDGE], texts)
        self._entries.move_to_end(uri)
        while len(self._entries) > self.max_documents:
            self._entries.popitem(last=False)

    def lookup(self, uri: str, prefix: str, suffix: str) -> list[str] | None:
        """The rest of each shown suggestion the user has typed into (the same place: the
        whole suggestion), or None."""
        shown = self._entries.get(uri)
        if shown is None or suffix[:EDGE] != shown.suffix_head:
            return None
        rests = []
        for text in shown.texts:
            typed = _typed_length(prefix, shown.prefix_tail, text)
            if typed is not None and typed < len(text):
                rests.append(text[typed:])
        if not rests:
            return None
        self.hits += 1
        return rests

    def forget(self, uri: str) -> None:
        self._entries.pop(uri, None)

    def __len__(self) -> int:
        return len(self._entries)


def _typed_length(prefix: str, old_tail: str, text: str) -> int | None:
    """n such that prefix == (the old prefix) + text[:n], judged on the last EDGE characters
    of the old prefix (all of it when it was shorter)."""
    for n in range(min(len(text), len(prefix)) + 1):
        before = len(prefix) - n
        if not prefix.endswith(text[:n]) or not prefix.endswith(old_tail, 0, before):
            continue
        if len(old_tail) == EDGE or before == len(old_tail):
            return n
    return None
