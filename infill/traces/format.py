"""The trace format (see infill/traces/__init__.py): reading, writing, and applying changes.

`Document` keeps the text as a list of lines so that a keystroke costs one line's work, not a
copy of the whole file: a trace of a whole file has one change per character.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from infill.syntax.positions import (LINE_BREAK, Lines, content, split_lines,  # noqa: F401
                                     utf16_len)

TYPES = ("open", "change", "request", "pause")
FUTURE_LIMIT = 4000  # characters of future typing looked at: far more than a suggestion


class TraceError(ValueError):
    """A trace file that is not valid JSON Lines of the format: says where."""


def after_insert(line: int, character: int, text: str) -> tuple[int, int]:
    """The LSP position just after `text` inserted at (line, character)."""
    parts = LINE_BREAK.split(text)
    if len(parts) == 1:
        return line, character + utf16_len(text)
    return line + len(parts) - 1, utf16_len(parts[-1])


def position(line: int, character: int) -> dict:
    return {"line": line, "character": character}


class Document(Lines):
    """A document's text, patched by LSP `contentChanges` (UTF-16 positions, clamped)."""

    def offset(self, line: int, character: int) -> int:
        """The index into `text` of an LSP position."""
        li, ci = self.position(line, character)
        return sum(len(l) for l in self.lines[:li]) + ci

    def line_rest(self, line: int, character: int) -> str:
        """The rest of the line after a position (without the break)."""
        li, ci = self.position(line, character)
        return content(self.lines[li])[ci:]

    def apply(self, change: dict) -> None:
        """One entry of `contentChanges`: a ranged edit, or (no range) the whole text."""
        r = change.get("range")
        if r is None:
            self.replace(change["text"])
            return
        self.replace(change["text"], (r["start"]["line"], r["start"]["character"]),
                     (r["end"]["line"], r["end"]["character"]))


# --- reading and writing ---------------------------------------------------------------------

def write_trace(path: str | Path, events: Iterable[dict]) -> int:
    """Write events as JSON Lines; returns how many."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
            n += 1
    return n


def read_trace(path: str | Path) -> list[dict]:
    """The events of a trace file, checked; raises TraceError saying which line is wrong."""
    events, last_t, opened = [], 0.0, set()
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TraceError(f"{where}: not JSON ({exc.msg})") from None
            _check(event, where, last_t, opened)
            last_t = event["t"]
            events.append(event)
    if not events:
        raise TraceError(f"{path}: no events")
    return events


def _check(event, where: str, last_t: float, opened: set) -> None:
    if not isinstance(event, dict) or event.get("type") not in TYPES:
        raise TraceError(f"{where}: an event needs a type, one of {', '.join(TYPES)}")
    t = event.get("t")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < last_t:
        raise TraceError(f"{where}: t must be a number of ms, not before the previous event's")
    kind = event["type"]
    if kind == "pause":
        return
    if not isinstance(event.get("uri"), str):
        raise TraceError(f"{where}: a {kind} event needs a uri")
    if kind == "open":
        if not isinstance(event.get("text"), str):
            raise TraceError(f"{where}: an open event needs the document's text")
        opened.add(event["uri"])
        return
    if event["uri"] not in opened:
        raise TraceError(f"{where}: {event['uri']} is not open")
    if kind == "change":
        changes = event.get("contentChanges")
        if not isinstance(changes, list) or not all(
                isinstance(c, dict) and isinstance(c.get("text"), str) for c in changes):
            raise TraceError(f"{where}: contentChanges must be a list of {{range, text}}")
    elif kind == "request" and not _is_position(event.get("position")):
        raise TraceError(f"{where}: a request needs a position {{line, character}}")


def _is_position(p) -> bool:
    return isinstance(p, dict) and all(isinstance(p.get(k), int) and p[k] >= 0
                                       for k in ("line", "character"))


# --- what a trace does ------------------------------------------------------------------------

def final_texts(events: list[dict]) -> dict[str, str]:
    """Each document's text after every change: the file the trace was made from."""
    docs: dict[str, Document] = {}
    for event in events:
        if event["type"] == "open":
            docs[event["uri"]] = Document(event["text"])
        elif event["type"] == "change":
            for change in event["contentChanges"]:
                docs[event["uri"]].apply(change)
    return {uri: doc.text for uri, doc in docs.items()}


def insertion(event: dict) -> tuple[dict, str] | None:
    """(position, text) when a change event is one insertion without a selection."""
    changes = event.get("contentChanges") or []
    if len(changes) != 1 or "range" not in changes[0]:
        return None
    r = changes[0]["range"]
    if r["start"] != r["end"]:
        return None
    return r["start"], changes[0]["text"]


def future_typing(events: list[dict], index: int, limit: int = FUTURE_LIMIT) -> str:
    """What the user types at the request `events[index]`'s position from then on: the later
    insertions that each continue exactly where the previous one left the cursor, up to the
    first change anywhere else (or in another document, or a deletion)."""
    request = events[index]
    uri, at = request["uri"], (request["position"]["line"], request["position"]["character"])
    typed: list[str] = []
    n = 0
    for event in events[index + 1:]:
        if event["type"] == "open":
            break
        if event["type"] != "change":
            continue
        found = insertion(event)
        if event["uri"] != uri or found is None or (found[0]["line"], found[0]["character"]) != at:
            break
        typed.append(found[1])
        n += len(found[1])
        at = after_insert(*at, found[1])
        if n >= limit:
            break
    return "".join(typed)[:limit]


def typed_chars(events: list[dict]) -> tuple[int, int]:
    """(keystrokes, characters) of the trace's insertions."""
    keys = chars = 0
    for event in events:
        if event["type"] == "change" and (found := insertion(event)) is not None and found[1]:
            keys += 1
            chars += len(found[1])
    return keys, chars
