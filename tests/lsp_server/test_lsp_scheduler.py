"""The scheduler alone: newest request per document wins, cancellation reaches the running job
through its token, debounce coalesces a burst, deadlines stop a job."""

import asyncio
import threading
import time

import pytest

from lsp_server.scheduler import ModelThread, Scheduler


def job_of(steps: int, step_s: float, log: list):
    """A job that checks its token every step, as the decoders do."""
    def job(token):
        for i in range(steps):
            token.check()
            log.append(i)
            time.sleep(step_s)
        return "done"
    return job


@pytest.fixture
def scheduler():
    worker = ModelThread()
    yield Scheduler(worker)
    worker.stop()


async def test_a_newer_request_cancels_the_running_one_mid_job(scheduler):
    log = []
    old = asyncio.ensure_future(scheduler.run("a", job_of(1000, 0.001, log)))
    while len(log) < 3:
        await asyncio.sleep(0.001)
    new = await scheduler.run("a", job_of(2, 0, []))
    assert new == "done" and await old is None
    assert len(log) < 1000 and scheduler.superseded == 1 and scheduler.running == 0


async def test_other_documents_do_not_cancel_each_other(scheduler):
    results = await asyncio.gather(scheduler.run("a", job_of(3, 0.001, [])),
                                   scheduler.run("b", job_of(3, 0.001, [])))
    assert results == ["done", "done"]


async def test_a_burst_within_the_debounce_starts_one_job(scheduler):
    started = []

    def job(token):
        started.append(threading.get_ident())
        return len(started)

    runs = []
    for _ in range(20):
        runs.append(asyncio.ensure_future(scheduler.run("a", job, debounce=0.05)))
        await asyncio.sleep(0)
    results = await asyncio.gather(*runs)
    assert results == [None] * 19 + [1] and len(started) == 1


async def test_a_client_cancel_cancels_the_token_and_propagates(scheduler):
    log = []
    task = asyncio.ensure_future(scheduler.run("a", job_of(1000, 0.001, log)))
    while len(log) < 3:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wrap_future(scheduler.worker.submit(lambda: None))  # the thread is free again
    assert len(log) < 1000 and scheduler.running == 0


async def test_a_deadline_stops_a_job(scheduler):
    result = await scheduler.run("a", job_of(1000, 0.001, []), deadline=time.monotonic() + 0.02)
    assert result is None and scheduler.timed_out == 1


async def test_an_edit_supersedes_and_cancel_all_stops_everything(scheduler):
    logs = {k: [] for k in "abc"}
    tasks = {k: asyncio.ensure_future(scheduler.run(k, job_of(1000, 0.001, logs[k]))) for k in "abc"}
    await asyncio.sleep(0.01)
    scheduler.supersede("a")
    scheduler.cancel_all()
    assert [await tasks[k] for k in "abc"] == [None, None, None]
    assert scheduler.running == 0
