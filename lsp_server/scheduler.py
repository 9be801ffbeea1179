"""Newest request per document wins, and the one thread that runs the models.

Editors fire a completion request per keystroke and Neovim never cancels the older ones, so
the server drops stale work itself: a new request (or an edit) for a document cancels the
token of the request before it, and the engines check that token once per decode/denoise step.
A request waits `debounce` seconds before it starts the model, so a burst of keystrokes
starts the model once. `$/cancelRequest` cancels the asyncio task awaiting the model; the
scheduler turns that into the same token cancel.

All model work (loading, warm-up, completions) runs on one daemon thread: models and their
KV caches are not safe to share between threads, two decodes at once would only halve each
other's speed, and a cancelled decode gives the thread back within one step. The event loop
never blocks on a model.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from infill.request import Cancelled, CancelToken

T = TypeVar("T")


class ModelThread:
    """A single daemon worker thread (a ThreadPoolExecutor's workers are joined at exit, and
    a model load cannot be interrupted: exiting must not wait for it)."""

    def __init__(self, name: str = "infill-model"):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        self._jobs.put((future, fn, args))
        return future

    @property
    def pending(self) -> int:
        return self._jobs.qsize()

    def stop(self) -> None:
        """End the thread after the jobs already queued."""
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to whoever awaits the future
                future.set_exception(exc)


class Scheduler:
    """Runs `job(token)` on the model thread, newest per key (document URI) winning."""

    def __init__(self, worker: ModelThread):
        self.worker = worker
        self._latest: dict[str, Any] = {}  # key -> the CancelToken of its newest request
        self.superseded = 0
        self.timed_out = 0

    def supersede(self, key: str) -> None:
        """Cancel whatever runs or waits for `key` (a new request or an edit made it stale)."""
        token = self._latest.pop(key, None)
        if token is not None:
            token.cancel()

    def cancel_all(self) -> None:
        for key in list(self._latest):
            self.supersede(key)

    @property
    def running(self) -> int:
        return len(self._latest)

    async def run(self, key: str, job: Callable[[Any], T], debounce: float = 0.0,
                  deadline: float | None = None) -> T | None:
        """job's result, or None when a newer request for key superseded this one or the
        deadline (a time.monotonic() value) passed. Raises asyncio.CancelledError when the
        client cancelled it ($/cancelRequest)."""
        self.supersede(key)
        token = self._latest[key] = CancelToken(deadline)
        try:
            if debounce > 0:
                await asyncio.sleep(debounce)
            if not token.cancelled:
                return await asyncio.wrap_future(self.worker.submit(job, token))
        except Cancelled:
            pass
        except asyncio.CancelledError:
            token.cancel()
            raise
        finally:
            newest = self._latest.get(key) is token
            if newest:
                del self._latest[key]
        if newest:  # nothing replaced it: its deadline stopped it
            self.timed_out += 1
        else:
            self.superseded += 1
        return None
