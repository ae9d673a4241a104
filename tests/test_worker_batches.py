"""A worker takes quick chunks a batch at a time and slow ones one at a time; a chunk it holds in a
batch but will not run next (one before it was slow, or failed) is visible to every worker again
at once, not after its visibility timeout. The real worker code on a SQLite service, with the
queue driven by hand; `QUICK` is the test's where the outcome would hang on the machine's speed."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fanout import task
from fanout.errors import StoreUnavailable
from fanout.models import Delivery, Job, TenantId
from fanout.service import Fanout, JobRequest
from fanout.workers import chunk_worker

TENANT = TenantId("tenant-a")
SLOW = 0.3  # seconds the slow item takes; QUICK is set below it


PAUSE = "test_worker_batches_pause"


@task(name=PAUSE)
def pause(item: int) -> int:
    if item < 0:
        time.sleep(SLOW)
    return item


def submit(service: Fanout, items: list[int]) -> Job:
    request = JobRequest(task=PAUSE, items=items, params={}, chunk_size=1)
    job, _ = service.submit(TENANT, request)
    return job


def done(service: Fanout, job: Job) -> int:
    return service.get(TENANT, job.id).succeeded


def test_after_a_quick_chunk_the_next_receive_takes_a_batch(
    service: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunk_worker, "QUICK", 10.0)  # every chunk is quick, however busy CI is
    job = submit(service, list(range(25)))
    pace = chunk_worker.Pace()
    owed = chunk_worker.HandBacks()

    assert chunk_worker.poll_once(service, "worker-1", owed, pace)
    assert done(service, job) == 1 and pace.size == chunk_worker.BATCH == 10
    assert chunk_worker.poll_once(service, "worker-1", owed, pace)
    assert done(service, job) == 11
    assert chunk_worker.poll_once(service, "worker-1", owed, pace)
    assert done(service, job) == 21
    assert chunk_worker.poll_once(service, "worker-1", owed, pace)
    assert done(service, job) == 25
    assert not chunk_worker.poll_once(service, "worker-1", owed, pace)


def test_after_a_slow_chunk_the_rest_of_its_batch_is_handed_back_and_one_is_taken_next(
    service: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunk_worker, "QUICK", SLOW / 2)
    job = submit(service, [0, -1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])  # the second is slow
    pace = chunk_worker.Pace()
    pace.ran(all_quick=True)

    assert chunk_worker.poll_once(service, "worker-1", None, pace)
    assert done(service, job) == 2 and pace.size == 1
    # The eight left of that batch are visible now, to another worker: not held for 60 s.
    taken = service.receive("worker-2", 10)
    assert sorted(d.chunk.start for d in taken) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]


def test_a_chunk_that_fails_in_a_batch_hands_back_itself_and_the_rest(
    service: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = submit(service, list(range(10)))
    pace = chunk_worker.Pace()
    pace.ran(all_quick=True)
    process = service.process
    calls: list[Delivery] = []

    def fail_the_third(delivery: Delivery) -> Any:
        calls.append(delivery)
        if len(calls) == 3:
            raise StoreUnavailable("the disk is full")
        return process(delivery)

    monkeypatch.setattr(service, "process", fail_the_third)
    with pytest.raises(StoreUnavailable):
        chunk_worker.poll_once(service, "worker-1", None, pace)
    assert done(service, job) == 2
    taken = service.receive("worker-2", 10)
    assert sorted(d.chunk.start for d in taken) == [2, 3, 4, 5, 6, 7, 8, 9]
