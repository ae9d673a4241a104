"""The end of a job and the way to it, through `fanout.service.Fanout` on SQLite with the queue
driven by hand: a reducer over every output in input order, a reducer the finalizing process
lacks, a chunk that killed its workers split into exact halves and gone from the dead letters,
and the completion event due at once and claimed by one deliverer only.

Written to kill the mutants `python -m bench mutation` found surviving in the finalize, fan-in
and delivery-claim paths.
"""

from __future__ import annotations

from typing import Any

import pytest

from fanout import reducer, tasks
from fanout.models import ChunkRef, Delivery, Job, JobStatus, TenantId
from fanout.service import Fanout, JobRequest
from fanout.settings import Settings
from fanout.wiring import build
from fanout.workers import chunk_worker

TENANT = TenantId("tenant-a")
HOOK = "http://127.0.0.1:9/hook"
GONE = "test_finalize_edges_gone"


@reducer(name="test_finalize_edges_collect")
def collect(outputs: list[Any]) -> Any:
    return list(outputs)


@reducer(name=GONE)
def gone(outputs: list[Any]) -> Any:
    return len(outputs)


def submit(service: Fanout, items: list[Any], **options: Any) -> Job:
    job, _ = service.submit(TENANT, JobRequest(task="echo", items=items, params={}, **options))
    return job


def run_to_end(service: Fanout, job: Job) -> Job:
    for _ in range(100):
        if not chunk_worker.poll_once(service):
            break
    done = service.get(TENANT, job.id)
    assert done.status.terminal
    return done


# -- finalize: the reducer ------------------------------------------------------------------------


def test_a_reducer_gets_every_output_in_input_order_from_chunks_of_one_item(
    service: Fanout,
) -> None:
    job = submit(service, [10, 20, 30, 40, 50], chunk_size=1, reduce="test_finalize_edges_collect")

    done = run_to_end(service, job)

    assert done.status is JobStatus.SUCCEEDED
    assert done.reduce_value == [10, 20, 30, 40, 50]


def test_a_reducer_missing_from_the_finalizing_process_fails_the_job_and_says_why(
    service: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API's process knew the reducer; the worker that finalizes does not (its FANOUT_TASKS
    lacks the module): the job fails, naming the reducer, never succeeds without its value."""
    job = submit(service, [1, 2, 3], reduce=GONE)
    monkeypatch.delitem(tasks._REDUCERS, GONE)

    done = run_to_end(service, job)

    assert done.status is JobStatus.FAILED and done.reduce_value is None
    assert done.error == (
        f"reducer {GONE!r} raised LookupError: reducer is not registered in this process"
    )


# -- fan-in: a chunk that kills its workers -------------------------------------------------------


def dead_letter(service: Fanout, job: Job) -> Delivery:
    """The job's one chunk, received until the queue gives up on it (its worker died every
    time: never recorded, never deleted), then received from the dead letters."""
    queue = service.backend.queue
    for _ in range(service.settings.max_receive_count + 1):
        if not queue.receive(1, 0.0, "dying-worker"):
            break
    [dead] = queue.receive_dead(1, 0.0, "bisector")
    assert dead.chunk == ChunkRef(job.id, 0, job.total)
    return dead


@pytest.mark.parametrize(
    ("size", "halves"), [(2, [(0, 1), (1, 2)]), (4, [(0, 2), (2, 4)]), (5, [(0, 2), (2, 5)])]
)
def test_a_dead_letter_is_split_into_two_halves_and_leaves_the_dead_letters(
    service: Fanout, size: int, halves: list[tuple[int, int]]
) -> None:
    job = submit(service, list(range(size)), chunk_size=size)
    dead = dead_letter(service, job)

    service.process_dead_letter(dead)

    queued = service.backend.queue.receive(10, 60.0, "worker")
    assert sorted((d.chunk.start, d.chunk.end) for d in queued) == halves
    # Visible again at once were it still there (received with no visibility timeout above).
    assert service.backend.queue.receive_dead(10, 0.0, "bisector") == []


# -- the completion event -------------------------------------------------------------------------


def test_a_finished_job_s_event_is_due_at_once_and_claimed_by_one_deliverer_only(
    service: Fanout, settings: Settings
) -> None:
    job = run_to_end(service, submit(service, [1, 2], webhook_url=HOOK))
    other_server = build(settings)

    [event] = service.due_events()

    assert event.id == f"evt_{job.id}" and event.url == HOOK
    # Its claim lasts an attempt and more; meanwhile no deliverer, here or elsewhere, gets it.
    assert service.due_events() == []
    assert other_server.due_events() == []
