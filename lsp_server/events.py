"""Shown / accepted / partially-accepted events, logged locally as JSON lines.

Each suggestion the server returns gets an id; the item's `command` (`infill.accepted`) reports
its acceptance, and the notification `infill/event` reports the rest:

    {"type": "shown" | "accepted" | "partiallyAccepted" | "dismissed", "id": "...",
     "acceptedLength": 12}

Nothing leaves the machine: the log is one file, `events.jsonl` in `logDir`, cut over to
`events.jsonl.1` past MAX_BYTES. It records lengths, engine, model and latency, not code.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections import OrderedDict
from pathlib import Path

log = logging.getLogger(__name__)

EVENT_TYPES = ("shown", "accepted", "partiallyAccepted", "dismissed")
MAX_BYTES = 8 * 1024 * 1024
MAX_ITEMS = 512  # suggestions remembered for their later events


def default_log_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "infill"


class EventLog:
    def __init__(self, directory: str | os.PathLike | None = None, enabled: bool = True):
        self.directory = Path(directory) if directory else default_log_dir()
        self.enabled = enabled
        self._items: OrderedDict[str, dict] = OrderedDict()
        self.counts = {t: 0 for t in EVENT_TYPES}

    @property
    def path(self) -> Path:
        return self.directory / "events.jsonl"

    def issue(self, **facts) -> str:
        """A new suggestion id, remembering facts (uri, engine, model, chars, ms) about it."""
        item_id = uuid.uuid4().hex[:16]
        self._items[item_id] = facts
        while len(self._items) > MAX_ITEMS:
            self._items.popitem(last=False)
        return item_id

    def record(self, event: str, item_id: str, accepted_length: int | None = None) -> bool:
        """Log one event about a suggestion; False when the event or the id is unknown."""
        if event not in EVENT_TYPES or not isinstance(item_id, str) or item_id not in self._items:
            return False
        self.counts[event] += 1
        entry = {"ts": round(time.time(), 3), "event": event, "id": item_id, **self._items[item_id]}
        if accepted_length is not None:
            entry["acceptedLength"] = accepted_length
        self._write(entry)
        return True

    def _write(self, entry: dict) -> None:
        if not self.enabled:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if self.path.exists() and self.path.stat().st_size > MAX_BYTES:
                self.path.replace(self.path.with_suffix(".jsonl.1"))
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
        except OSError as exc:  # a read-only home must not break completions
            log.warning("event log disabled: %s", exc)
            self.enabled = False
