"""The end of a job and the way to it, through `fanout.service.Fanout` on SQLite with the queue
driven by hand: a reducer over every output in input order, a reducer the finalizing process
lacks, a chunk that killed its workers split into exact halves and gone from the dead letters,
the completion event due at once and claimed by one deliverer only, and the deliveries a worker
records, extends, hands back or loses with its lease.

Written to kill the mutants `python -m bench mutation` found surviving in the finalize, fan-in
and delivery-claim paths.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import pytest

from fanout import reducer, task, tasks
from fanout.models import ChunkRef, Delivery, Job, JobStatus, TenantId
from fanout.service import Fanout, JobRequest
from fanout.service.delivering import CLAIM_MARGIN
from fanout.settings import Settings
from fanout.wiring import build
from fanout.workers import chunk_worker

TENANT = TenantId("tenant-a")
HOOK = "http://127.0.0.1:9/hook"
GONE = "test_finalize_edges_gone"


@task(name="test_finalize_edges_positive", max_attempts=1)
def positive(item: int) -> int:
    if item < 0:
        raise ValueError(f"item {item} is negative")
    return item


@reducer(name="test_finalize_edges_collect")
def collect(outputs: list[Any]) -> Any:
    return list(outputs)


@reducer(name=GONE)
def gone(outputs: list[Any]) -> Any:
    return len(outputs)


def submit(service: Fanout, items: list[Any], task: str = "echo", **options: Any) -> Job:
    job, _ = service.submit(TENANT, JobRequest(task=task, items=items, params={}, **options))
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


def test_a_job_without_a_reducer_ends_with_no_result_value(service: Fanout) -> None:
    done = run_to_end(service, submit(service, [1, 2]))

    assert (done.status, done.reduce_value, done.error) == (JobStatus.SUCCEEDED, None, None)


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


@task(name="test_finalize_edges_elsewhere")
def elsewhere(item: int) -> int:
    return item


def test_a_worker_without_the_job_s_task_fails_each_item_saying_so(
    service: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API's process knew the task; the worker does not (its FANOUT_TASKS lacks the
    module): every item fails with TaskNotFound, no attempt made, and the job ends."""
    job = submit(service, [1, 2, 3], task="test_finalize_edges_elsewhere", chunk_size=2)
    monkeypatch.delitem(tasks._TASKS, "test_finalize_edges_elsewhere")

    done = run_to_end(service, job)

    assert (done.status, done.succeeded, done.failed) == (JobStatus.FAILED, 0, 3)
    _, lines = next(iter(service.backend.jobs.result_blocks(job.id, 0)))
    assert json.loads(lines.split(b"\n")[0])["error"] == {
        "type": "TaskNotFound",
        "message": "no task named 'test_finalize_edges_elsewhere'",
        "attempts": 0,
    }


# -- fan-in: a chunk that kills its workers -------------------------------------------------------


def at_once(settings: Settings) -> Fanout:
    """A service whose deliveries are visible again at once (a visibility timeout of 0), so
    what is left in the queue after a step shows on the next receive."""
    return build(settings.model_copy(update={"visibility_timeout": 0.0}))


def dead_letter(service: Fanout, job: Job) -> Delivery:
    """The job's one chunk, received until the queue gives up on it (its worker died every
    time: never recorded, never deleted), then received from the dead letters."""
    for _ in range(service.settings.max_receive_count + 1):
        if not service.receive("dying-worker"):
            break
    [dead] = service.receive_dead_letters("bisector")
    assert dead.chunk == ChunkRef(job.id, 0, job.total)
    return dead


@pytest.mark.parametrize(
    ("size", "halves"), [(2, [(0, 1), (1, 2)]), (4, [(0, 2), (2, 4)]), (5, [(0, 2), (2, 5)])]
)
def test_a_dead_letter_is_split_into_two_halves_and_leaves_the_dead_letters(
    settings: Settings, size: int, halves: list[tuple[int, int]]
) -> None:
    service = at_once(settings)
    job = submit(service, list(range(size)), chunk_size=size)
    dead = dead_letter(service, job)

    service.process_dead_letter(dead)

    queued = service.backend.queue.receive(10, 60.0, "worker")
    assert sorted((d.chunk.start, d.chunk.end) for d in queued) == halves
    # Visible again at once were it still there.
    assert service.receive_dead_letters("bisector") == []


# -- the completion event -------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [0.5, 10.0])
def test_a_finished_job_s_event_is_due_at_once_and_claimed_by_one_deliverer_only(
    settings: Settings, timeout: float
) -> None:
    """Its claim lasts an attempt (the webhook timeout) and more; meanwhile no deliverer, here or
    in another server on the same data, gets the event, however short the timeout."""
    service = build(settings.model_copy(update={"webhook_timeout": timeout}))
    job = run_to_end(service, submit(service, [1, 2], webhook_url=HOOK))
    other_server = build(settings)
    before = time.time()

    [event] = service.due_events()

    assert event.id == f"evt_{job.id}" and event.url == HOOK
    assert event.next_attempt_at >= before + timeout + CLAIM_MARGIN
    assert service.due_events() == []
    assert other_server.due_events() == []


def test_a_claim_with_less_than_an_attempt_left_is_renewed_before_the_attempt(
    settings: Settings,
) -> None:
    """Claimed by a deliverer with a 2 s webhook timeout (an 11 s lease), then confirmed before
    sending by one with a 10 s timeout: less than its attempt (and the margin) is left, so the
    claim is renewed, and the renewed lease is the one stored."""
    short = build(settings.model_copy(update={"webhook_timeout": 2.0}))
    long = build(settings.model_copy(update={"webhook_timeout": 10.0}))
    run_to_end(short, submit(short, [1], webhook_url=HOOK))
    [claimed] = short.due_events()
    before = time.time()

    renewed = long.confirm_claim(claimed)

    assert renewed is not None and renewed.id == claimed.id
    assert renewed.next_attempt_at >= before + 10.0 + CLAIM_MARGIN > claimed.next_attempt_at
    # The old lease is no longer the claim: confirming it again finds it taken.
    assert long.confirm_claim(claimed) is None
    assert long.confirm_claim(renewed) == renewed


def test_a_claim_with_an_attempt_s_time_left_is_kept_as_it_is(settings: Settings) -> None:
    service = build(settings.model_copy(update={"webhook_timeout": 2.0}))
    run_to_end(service, submit(service, [1], webhook_url=HOOK))
    [claimed] = service.due_events()

    assert service.confirm_claim(claimed) == claimed


def test_each_run_of_a_redriven_job_ends_with_a_completion_event_of_its_own(
    service: Fanout,
) -> None:
    job = submit(service, [1, -2, 3], task="test_finalize_edges_positive", webhook_url=HOOK)
    first = run_to_end(service, job).event
    service.redrive(TENANT, job.id)

    second = run_to_end(service, job).event

    assert first is not None and second is not None
    assert (first.id, second.id) == (f"evt_{job.id}", f"evt_{job.id}_1")


# -- the queue's deliveries and the workers' leases -----------------------------------------------


def test_a_recorded_chunk_s_message_leaves_the_queue_with_the_record(settings: Settings) -> None:
    service = at_once(settings)
    job = submit(service, [1, 2, 3, 4], chunk_size=2, max_concurrency=1)
    [first] = service.receive("worker")

    service.process(first)

    # The next chunk is released; the recorded one's message is gone, not merely hidden.
    assert [d.chunk for d in service.receive("worker")] == [ChunkRef(job.id, 2, 4)]


def test_an_extended_delivery_stays_hidden_for_another_visibility_timeout(
    settings: Settings,
) -> None:
    service = at_once(settings)
    submit(service, [1])
    [delivery] = service.receive("worker")

    build(settings).extend(delivery)  # a 60 s visibility timeout

    assert service.receive("another") == []


def test_a_delivery_handed_back_is_visible_again_at_once(settings: Settings) -> None:
    service = build(settings)
    job = submit(service, [1])
    [delivery] = service.receive("worker")
    assert service.receive("another") == []

    service.hand_back(delivery)

    assert [d.chunk for d in service.receive("another")] == [ChunkRef(job.id, 0, 1)]


def test_what_a_dead_worker_held_is_handed_back_at_once(settings: Settings) -> None:
    service = build(settings)
    job = submit(service, [1])
    service.receive("dead-worker")

    assert service.reclaim("dead-worker") == 1
    assert [d.chunk for d in service.receive("another")] == [ChunkRef(job.id, 0, 1)]


def test_a_worker_that_heartbeats_keeps_its_chunks_and_a_silent_one_loses_them(
    settings: Settings,
) -> None:
    service = build(settings)
    alive = submit(service, [1])
    [kept] = service.receive("alive-worker")
    silent = submit(service, [2])
    [lost] = service.receive("silent-worker")
    service.heartbeat("alive-worker")

    assert service.reclaim() == 1

    assert (kept.chunk.job_id, lost.chunk.job_id) == (alive.id, silent.id)
    assert [d.chunk for d in service.receive("another", 10)] == [lost.chunk]


def test_the_completion_event_carries_the_job_as_it_ended(service: Fanout) -> None:
    """Its payload: the type by status, a UTC timestamp in Z form, and the finished job's view
    (counts with nothing running, the reducer's value, no error)."""
    job = submit(service, [1, 2, 3], reduce="sum", webhook_url=HOOK)

    done = run_to_end(service, job)

    assert done.event is not None
    payload = json.loads(done.event.payload)
    assert payload["type"] == "job.succeeded"
    assert payload["timestamp"].endswith("Z")
    assert abs(datetime.fromisoformat(payload["timestamp"]).timestamp() - time.time()) < 60
    data = payload["data"]
    assert (data["id"], data["status"], data["result"], data["error"]) == (
        job.id,
        "succeeded",
        6,
        None,
    )
    assert data["counts"] == {
        "total": 3,
        "succeeded": 3,
        "failed": 0,
        "pending": 0,
        "running": 0,
        "cancelled": 0,
    }
    assert data["finished_at"] is not None
