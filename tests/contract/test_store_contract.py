"""The store ports (JobStore, ChunkStore, Reconcilable, Outbox, IdempotencyStore), written once
for every backend: what each operation promises, also when repeated or raced."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from msgspec import structs
from pydantic_core import from_json

from fanout.errors import IdempotencyConflict, IdempotencyMismatch, JobExists
from fanout.models import (
    ChunkRef,
    ChunkResult,
    DeliveryStatus,
    EventId,
    Job,
    JobId,
    JobStatus,
    KeyClaim,
    NewJob,
    RecordOutcome,
    TenantId,
    WebhookEvent,
)
from fanout.service import Backend, new_job_id
from tests.contract.support import (
    OTHER_TENANT,
    TENANT,
    chunk_refs,
    echoed,
    fan_in,
    new_job,
    record,
)

LEASE = 10.0


def stored(backend: Backend, job_id: JobId) -> Job:
    job = backend.jobs.get_job(job_id)
    assert job is not None
    return job


def run(backend: Backend, chunk: ChunkRef, failed: frozenset[int] = frozenset()) -> RecordOutcome:
    """What a worker does with a delivered chunk: start it, then record its result."""
    assert backend.chunks.start_chunk(chunk, time.time()) is not None
    return record(backend, chunk, echoed(chunk, failed))


def completion_event(job: NewJob, at: float) -> WebhookEvent:
    assert job.webhook is not None
    return WebhookEvent(
        id=EventId(f"evt_{job.id}"),
        job_id=job.id,
        url=job.webhook.url,
        secret=job.webhook.secret,
        payload=b'{"type":"job.succeeded"}',
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=at,
    )


def claim(
    backend: Backend, job: NewJob, status: JobStatus = JobStatus.SUCCEEDED, at: float = 0.0
) -> bool:
    at = at or time.time()
    event = completion_event(job, at) if job.webhook else None
    return backend.jobs.claim_completion(job.id, status, at, None, None, event)


def lines_of(backend: Backend, job_id: JobId, start: int = 0) -> list[dict[str, Any]]:
    outcomes: list[dict[str, Any]] = []
    for _, lines in backend.jobs.result_blocks(job_id, start):
        outcomes.extend(from_json(line) for line in lines.split(b"\n"))
    return outcomes


# -- creating and reading jobs ----------------------------------------------------------------


def test_creating_a_job_stores_every_chunk_and_releases_exactly_the_first_window(
    backend: Backend,
) -> None:
    job, chunks = new_job(total=10, chunk_size=2, max_concurrency=3)
    every = chunk_refs(job, chunks)

    assert backend.jobs.create_job(job, chunks) == every[:3]
    # Widening the window releases the rest, and every chunk reads back its own items.
    assert backend.jobs.set_max_concurrency(job.id, 100) == every[3:]
    for chunk in every:
        items = backend.chunks.start_chunk(chunk, time.time())
        assert items is not None
        assert from_json(items) == list(range(chunk.start, chunk.end))


def test_a_created_job_reads_back_as_submitted_and_queued(backend: Backend) -> None:
    job, chunks = new_job(total=7, chunk_size=3, max_concurrency=2, webhook=True)
    backend.jobs.create_job(job, chunks)

    got = stored(backend, job.id)
    assert (got.id, got.tenant, got.task, got.params) == (job.id, job.tenant, "echo", {})
    assert got.options == job.options
    assert got.webhook_url == "http://127.0.0.1:9/hook"
    assert got.created_at == pytest.approx(job.created_at)
    assert got.status is JobStatus.QUEUED
    assert (got.total, got.succeeded, got.failed, got.running, got.pending) == (7, 0, 0, 0, 7)
    assert (got.started_at, got.finished_at, got.event) == (None, None, None)
    assert job.webhook is not None
    assert backend.jobs.webhook_secret(job.id) == job.webhook.secret


def test_a_job_without_a_webhook_has_no_secret(backend: Backend) -> None:
    job, chunks = new_job()
    backend.jobs.create_job(job, chunks)

    assert backend.jobs.webhook_secret(job.id) is None
    assert stored(backend, job.id).webhook_url is None


def test_a_job_with_no_items_can_be_created(backend: Backend) -> None:
    job, chunks = new_job(total=0)

    assert backend.jobs.create_job(job, chunks) == []
    assert stored(backend, job.id).total == 0


def test_starting_a_chunk_marks_the_job_and_its_items_running(backend: Backend) -> None:
    job, chunks = new_job(total=10, chunk_size=4, max_concurrency=2)
    first, second = backend.jobs.create_job(job, chunks)

    before = time.time()
    backend.chunks.start_chunk(first, time.time())
    got = stored(backend, job.id)
    assert got.status is JobStatus.RUNNING
    assert got.started_at is not None and got.started_at >= before - 1
    assert (got.running, got.pending) == (4, 6)

    backend.chunks.start_chunk(second, time.time())
    assert stored(backend, job.id).running == 8


def test_a_started_chunk_can_be_started_again_by_a_redelivery(backend: Backend) -> None:
    job, chunks = new_job(total=4, chunk_size=4, max_concurrency=1)
    [chunk] = backend.jobs.create_job(job, chunks)

    assert backend.chunks.start_chunk(chunk, time.time()) is not None
    assert backend.chunks.start_chunk(chunk, time.time()) is not None
    assert stored(backend, job.id).running == 4


def test_every_chunk_starts_with_exactly_its_own_items_and_a_redelivery_with_the_same(
    backend: Backend,
) -> None:
    job, chunks = new_job(total=1003, chunk_size=100, max_concurrency=11)
    every = backend.jobs.create_job(job, chunks)
    assert len(every) == 11

    for chunk in reversed(every):
        for _ in range(2):
            items = backend.chunks.start_chunk(chunk, time.time())
            assert items is not None
            assert from_json(items) == list(range(chunk.start, chunk.end))


def test_an_unknown_job_is_not_found(backend: Backend) -> None:
    assert backend.jobs.get_job(JobId("no-such-job")) is None
    assert backend.jobs.get_job(JobId("no-such-job"), TENANT) is None


# -- fan-in -----------------------------------------------------------------------------------


def test_recording_a_chunk_twice_counts_it_once(backend: Backend) -> None:
    job, chunks = new_job(total=6, chunk_size=2, max_concurrency=1)
    [chunk] = backend.jobs.create_job(job, chunks)

    first = run(backend, chunk, failed=frozenset({1}))
    again = record(backend, chunk, echoed(chunk))

    assert first.counted and not again.counted
    assert again.released == [] and not again.complete
    got = stored(backend, job.id)
    assert (got.succeeded, got.failed) == (1, 1)
    assert lines_of(backend, job.id)[1]["status"] == "failed"


def test_recording_a_chunk_counts_its_items_and_frees_them_from_running(backend: Backend) -> None:
    job, chunks = new_job(total=6, chunk_size=3, max_concurrency=2)
    first, _ = backend.jobs.create_job(job, chunks)

    run(backend, first, failed=frozenset({0, 2}))

    got = stored(backend, job.id)
    assert (got.succeeded, got.failed, got.running, got.pending) == (1, 2, 0, 3)


def test_the_last_chunk_reports_complete_exactly_once(backend: Backend) -> None:
    job, chunks = new_job(total=6, chunk_size=2, max_concurrency=3)
    released = backend.jobs.create_job(job, chunks)

    outcomes = [run(backend, chunk) for chunk in released]
    repeat = record(backend, released[-1], echoed(released[-1]))

    assert [o.complete for o in outcomes] == [False, False, True]
    assert not repeat.complete and not repeat.counted
    got = stored(backend, job.id)
    # Recording does not finalize: that is claim_completion's job.
    assert not got.status.terminal
    assert (got.succeeded, got.failed) == (6, 0)


def test_the_last_chunk_reports_complete_in_whatever_order_chunks_finish(
    backend: Backend,
) -> None:
    job, chunks = new_job(total=10, chunk_size=2, max_concurrency=5)
    released = backend.jobs.create_job(job, chunks)

    order = [released[i] for i in (3, 0, 4, 2, 1)]
    outcomes = [run(backend, chunk) for chunk in order]

    assert [o.complete for o in outcomes] == [False] * 4 + [True]


def test_concurrent_records_of_distinct_chunks_are_all_counted(backend: Backend) -> None:
    job, chunks = new_job(total=40, chunk_size=1, max_concurrency=40)
    released = backend.jobs.create_job(job, chunks)
    for chunk in released:
        backend.chunks.start_chunk(chunk, time.time())
    barrier = threading.Barrier(8)

    def record_twice(part: list[ChunkRef]) -> list[RecordOutcome]:
        barrier.wait()
        return [backend.chunks.record_chunk_result(c, echoed(c)) for c in part + part]

    with ThreadPoolExecutor(8) as pool:
        parts = pool.map(record_twice, [released[i::8] for i in range(8)])
        recorded = [outcome for part in parts for outcome in part]
    counted_later = fan_in(backend)

    assert sum(o.counted for o in recorded) == 40
    if backend.fan_in is not None:
        assert sorted(c.chunk.start for c in counted_later) == list(range(40))
    assert sum(o.complete for o in recorded + [c.outcome for c in counted_later]) == 1
    assert stored(backend, job.id).succeeded == 40


# -- windowed dispatch ------------------------------------------------------------------------


def test_the_window_keeps_in_flight_chunks_at_most_max_concurrency_and_releases_in_input_order(
    backend: Backend,
) -> None:
    job, chunks = new_job(total=30, chunk_size=2, max_concurrency=3)
    every = chunk_refs(job, chunks)
    in_flight = backend.jobs.create_job(job, chunks)
    released = list(in_flight)
    recorded = 0
    picker = random.Random(7)

    while in_flight:
        chunk = in_flight.pop(picker.randrange(len(in_flight)))
        outcome = run(backend, chunk)
        recorded += 1
        in_flight += outcome.released
        released += outcome.released
        assert len(in_flight) == min(3, len(every) - recorded)

    assert released == every


def test_widening_the_window_releases_more_chunks_in_input_order(backend: Backend) -> None:
    job, chunks = new_job(total=12, chunk_size=2, max_concurrency=1)
    every = chunk_refs(job, chunks)
    assert backend.jobs.create_job(job, chunks) == every[:1]

    assert backend.jobs.set_max_concurrency(job.id, 3) == every[1:3]
    assert stored(backend, job.id).options.max_concurrency == 3
    assert backend.jobs.set_max_concurrency(job.id, 3) == []


def test_narrowing_the_window_holds_back_releases_until_in_flight_drops_below_it(
    backend: Backend,
) -> None:
    job, chunks = new_job(total=12, chunk_size=2, max_concurrency=3)
    every = chunk_refs(job, chunks)
    backend.jobs.create_job(job, chunks)

    assert backend.jobs.set_max_concurrency(job.id, 1) == []
    assert run(backend, every[0]).released == []
    assert run(backend, every[1]).released == []
    assert run(backend, every[2]).released == every[3:4]


def test_the_window_of_a_finished_job_cannot_change(backend: Backend) -> None:
    job, chunks = new_job(total=10, chunk_size=2, max_concurrency=1)
    backend.jobs.create_job(job, chunks)
    claim(backend, job, JobStatus.CANCELLED)

    assert backend.jobs.set_max_concurrency(job.id, 5) == []
    assert stored(backend, job.id).options.max_concurrency == 1


# -- splitting (dead-letter bisection) --------------------------------------------------------


def test_splitting_a_chunk_replaces_it_by_two_halves_and_ignores_a_late_record_of_it(
    backend: Backend,
) -> None:
    job, chunks = new_job(total=9, chunk_size=9, max_concurrency=1)
    [parent] = backend.jobs.create_job(job, chunks)
    backend.chunks.start_chunk(parent, time.time())

    halves = backend.chunks.split_chunk(parent)

    assert len(halves) == 2
    low, high = halves
    assert (low.start, low.end, high.end) == (0, high.start, 9)
    assert 0 < high.start < 9
    for half in halves:
        items = backend.chunks.start_chunk(half, time.time())
        assert items is not None
        assert from_json(items) == list(range(half.start, half.end))
    late = record(backend, parent, echoed(parent))
    assert not late.counted
    assert backend.chunks.start_chunk(parent, time.time()) is None
    assert backend.chunks.split_chunk(parent) == []
    assert stored(backend, job.id).succeeded == 0

    outcomes = [record(backend, h, echoed(h)) for h in halves]
    assert [(o.counted, o.complete) for o in outcomes] == [(True, False), (True, True)]
    assert stored(backend, job.id).succeeded == 9
    assert [o["index"] for o in lines_of(backend, job.id)] == list(range(9))


def test_a_recorded_chunk_cannot_be_split(backend: Backend) -> None:
    job, chunks = new_job(total=8, chunk_size=4, max_concurrency=2)
    first, _ = backend.jobs.create_job(job, chunks)
    run(backend, first)

    assert backend.chunks.split_chunk(first) == []
    assert stored(backend, job.id).succeeded == 4
    assert [o["index"] for o in lines_of(backend, job.id)] == [0, 1, 2, 3]


def test_a_chunk_of_one_item_cannot_be_split(backend: Backend) -> None:
    job, chunks = new_job(total=2, chunk_size=1, max_concurrency=2)
    first, _ = backend.jobs.create_job(job, chunks)

    assert backend.chunks.split_chunk(first) == []
    assert run(backend, first).counted


def test_a_chunk_of_a_finished_job_is_not_started_split_or_counted(backend: Backend) -> None:
    job, chunks = new_job(total=8, chunk_size=4, max_concurrency=2)
    first, second = backend.jobs.create_job(job, chunks)
    backend.chunks.start_chunk(first, time.time())
    claim(backend, job, JobStatus.CANCELLED)

    assert backend.chunks.start_chunk(second, time.time()) is None
    assert backend.chunks.split_chunk(second) == []
    assert not record(backend, first, echoed(first)).counted
    got = stored(backend, job.id)
    assert (got.succeeded, got.failed, got.running, got.cancelled) == (0, 0, 0, 8)


# -- completion -------------------------------------------------------------------------------


def test_claiming_completion_wins_exactly_once_and_writes_one_event_under_concurrency(
    backend: Backend,
) -> None:
    job, chunks = new_job(webhook=True)
    backend.jobs.create_job(job, chunks)
    at = time.time()
    event = completion_event(job, at)
    contenders = 16
    barrier = threading.Barrier(contenders)

    def contend(status: JobStatus) -> bool:
        barrier.wait()
        return backend.jobs.claim_completion(job.id, status, at, {"sum": 1}, None, event)

    statuses = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED] * 6
    with ThreadPoolExecutor(contenders) as pool:
        wins = list(pool.map(contend, statuses[:contenders]))

    assert wins.count(True) == 1
    winner = statuses[wins.index(True)]
    got = stored(backend, job.id)
    assert got.status is winner
    assert got.finished_at == pytest.approx(at)
    assert got.reduce_value == {"sum": 1}
    assert got.event is not None and got.event.id == event.id
    due = [e for e in backend.outbox.due_events(at + 1, 100) if e.job_id == job.id]
    assert [e.id for e in due] == [event.id]


def test_a_claim_after_the_first_changes_nothing(backend: Backend) -> None:
    job, chunks = new_job()
    backend.jobs.create_job(job, chunks)
    at = time.time()

    assert backend.jobs.claim_completion(job.id, JobStatus.FAILED, at, None, "timed out", None)
    assert not backend.jobs.claim_completion(job.id, JobStatus.SUCCEEDED, at + 5, 42, None, None)

    got = stored(backend, job.id)
    assert (got.status, got.error, got.reduce_value) == (JobStatus.FAILED, "timed out", None)
    assert got.finished_at == pytest.approx(at)
    assert got.event is None


def test_a_finished_job_counts_its_items_without_an_outcome_as_cancelled(backend: Backend) -> None:
    job, chunks = new_job(total=10, chunk_size=2, max_concurrency=2)
    first, second = backend.jobs.create_job(job, chunks)
    run(backend, first, failed=frozenset({1}))
    backend.chunks.start_chunk(second, time.time())

    claim(backend, job, JobStatus.CANCELLED)

    got = stored(backend, job.id)
    assert (got.succeeded, got.failed, got.running, got.pending, got.cancelled) == (1, 1, 0, 0, 8)


# -- reading jobs and results -----------------------------------------------------------------


def test_a_tenant_sees_only_its_own_jobs(backend: Backend) -> None:
    job, chunks = new_job(tenant=TENANT)
    backend.jobs.create_job(job, chunks)

    assert backend.jobs.get_job(job.id, TENANT) is not None
    assert backend.jobs.get_job(job.id, OTHER_TENANT) is None
    assert backend.jobs.get_job(job.id) is not None
    assert backend.jobs.list_jobs(OTHER_TENANT, None, None, 10).items == []
    assert [j.id for j in backend.jobs.list_jobs(TENANT, None, None, 10).items] == [job.id]


def test_listing_jobs_pages_newest_first_and_filters_by_status(backend: Backend) -> None:
    start = time.time()
    jobs = []
    for i in range(5):
        job, chunks = new_job(created_at=start + i)
        backend.jobs.create_job(job, chunks)
        jobs.append(job)
    stranger, chunks = new_job(tenant=OTHER_TENANT, created_at=start + 2.5)
    backend.jobs.create_job(stranger, chunks)

    seen, cursor, pages = [], None, 0
    while True:
        page = backend.jobs.list_jobs(TENANT, None, cursor, 2)
        assert len(page.items) <= 2
        seen += [j.id for j in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [j.id for j in reversed(jobs)]
    assert pages == 3

    claim(backend, jobs[1])
    claim(backend, jobs[3])
    done = backend.jobs.list_jobs(TENANT, JobStatus.SUCCEEDED, None, 2)
    assert [j.id for j in done.items] == [jobs[3].id, jobs[1].id]
    assert done.next_cursor is None
    queued = backend.jobs.list_jobs(TENANT, JobStatus.QUEUED, None, 10)
    assert [j.id for j in queued.items] == [jobs[4].id, jobs[2].id, jobs[0].id]
    assert backend.jobs.list_jobs(TENANT, JobStatus.FAILED, None, 10).items == []


def test_result_blocks_come_in_input_order_whatever_order_chunks_were_recorded(
    backend: Backend,
) -> None:
    job, chunks = new_job(total=10, chunk_size=2, max_concurrency=5)
    every = backend.jobs.create_job(job, chunks)
    for chunk in reversed(every):
        if chunk.start != 2:
            run(backend, chunk)

    assert [first for first, _ in backend.jobs.result_blocks(job.id, 0)] == [0, 4, 6, 8]
    assert [first for first, _ in backend.jobs.result_blocks(job.id, 5)] == [4, 6, 8]
    assert [first for first, _ in backend.jobs.result_blocks(job.id, 3)] == [4, 6, 8]

    run(backend, every[1])
    blocks = list(backend.jobs.result_blocks(job.id, 0))
    assert [first for first, _ in blocks] == [0, 2, 4, 6, 8]
    assert [lines for _, lines in blocks] == [echoed(c).lines for c in every]
    assert [o["output"] for o in lines_of(backend, job.id)] == list(range(10))


def test_result_blocks_of_many_chunks_recorded_at_random_are_all_in_order(
    backend: Backend,
) -> None:
    job, chunks = new_job(total=300, chunk_size=1, max_concurrency=300)
    every = backend.jobs.create_job(job, chunks)
    for chunk in random.Random(3).sample(every, len(every)):
        backend.chunks.start_chunk(chunk, time.time())
        backend.chunks.record_chunk_result(chunk, echoed(chunk))
    fan_in(backend)

    assert [o["index"] for o in lines_of(backend, job.id)] == list(range(300))
    assert [o["index"] for o in lines_of(backend, job.id, 123)] == list(range(123, 300))


def test_large_result_blocks_read_back_whole_and_in_input_order(backend: Backend) -> None:
    job, chunks = new_job(total=600, chunk_size=200, max_concurrency=3)
    every = backend.jobs.create_job(job, chunks)
    padding = "x" * 100  # ~20 KB of lines a chunk, as ~100-byte results make
    results = {
        chunk: ChunkResult(
            succeeded=chunk.size,
            failed=0,
            lines=b"\n".join(
                b'{"index":%d,"status":"succeeded","output":"%s"}' % (i, padding.encode())
                for i in range(chunk.start, chunk.end)
            ),
        )
        for chunk in every
    }
    for chunk in reversed(every):
        backend.chunks.start_chunk(chunk, time.time())
        record(backend, chunk, results[chunk])

    assert [lines for _, lines in backend.jobs.result_blocks(job.id, 0)] == [
        results[c].lines for c in every
    ]
    assert [o["index"] for o in lines_of(backend, job.id, 450)] == list(range(400, 600))
    assert stored(backend, job.id).succeeded == 600


def test_a_job_has_no_result_blocks_before_any_chunk_is_recorded(backend: Backend) -> None:
    job, chunks = new_job()
    backend.jobs.create_job(job, chunks)

    assert list(backend.jobs.result_blocks(job.id, 0)) == []


# -- reconciling ------------------------------------------------------------------------------


def reconcilable_ids(backend: Backend, now: float, stale_after: float = 600.0) -> set[JobId]:
    return {job.id for job in backend.reconcilable.jobs_to_reconcile(now, stale_after)}


def test_a_complete_job_not_yet_finalized_is_to_reconcile(backend: Backend) -> None:
    job, chunks = new_job(total=4, chunk_size=2, max_concurrency=2)
    busy, chunks_of_busy = new_job()
    backend.jobs.create_job(busy, chunks_of_busy)
    for chunk in backend.jobs.create_job(job, chunks):
        run(backend, chunk)

    assert reconcilable_ids(backend, time.time()) == {job.id}
    claim(backend, job)
    assert reconcilable_ids(backend, time.time()) == set()


def test_a_job_past_its_deadline_is_to_reconcile(backend: Backend) -> None:
    now = time.time()
    late, chunks = new_job(timeout_seconds=10, created_at=now - 100)
    backend.jobs.create_job(late, chunks)
    in_time, chunks = new_job(timeout_seconds=1000, created_at=now - 100)
    backend.jobs.create_job(in_time, chunks)

    assert reconcilable_ids(backend, now) == {late.id}


def test_an_idle_job_is_to_reconcile_once_stale_and_never_once_finished(backend: Backend) -> None:
    job, chunks = new_job()
    backend.jobs.create_job(job, chunks)
    now = time.time()

    assert reconcilable_ids(backend, now, stale_after=600) == set()
    assert reconcilable_ids(backend, now + 1000, stale_after=600) == {job.id}
    claim(backend, job, JobStatus.CANCELLED)
    assert reconcilable_ids(backend, now + 1000, stale_after=600) == set()


def test_releasing_the_window_again_returns_every_chunk_that_should_be_queued(
    backend: Backend,
) -> None:
    job, chunks = new_job(total=12, chunk_size=2, max_concurrency=3)
    every = chunk_refs(job, chunks)
    backend.jobs.create_job(job, chunks)
    backend.chunks.start_chunk(every[0], time.time())
    run(backend, every[1])

    # At most the released chunks nobody started (their messages may be lost); never a running
    # one (its message is deleted only once it is recorded), nothing beyond the window.
    assert set(backend.chunks.release_window(job.id)) <= {every[2], every[3]}
    # Releasing twice is harmless: nothing beyond the window.
    assert set(backend.chunks.release_window(job.id)) <= {every[2], every[3]}


def test_creating_a_job_with_an_id_already_stored_raises_and_changes_nothing(
    backend: Backend,
) -> None:
    job, chunks = new_job(total=4, chunk_size=2)
    backend.jobs.create_job(job, chunks)
    first = stored(backend, job.id)

    with pytest.raises(JobExists):
        backend.jobs.create_job(job, chunks[:1])

    assert stored(backend, job.id) == first


def test_unstarted_chunks_count_what_waits_and_drop_what_started_or_ended(
    backend: Backend,
) -> None:
    before = backend.jobs.unstarted_chunks()
    job, chunks = new_job(total=10, chunk_size=2, max_concurrency=2)
    every = backend.jobs.create_job(job, chunks)
    assert backend.jobs.unstarted_chunks() - before == 5
    run(backend, every[0])
    assert backend.jobs.unstarted_chunks() - before == 4

    claim(backend, job, JobStatus.CANCELLED)

    assert backend.jobs.unstarted_chunks() - before == 0


def test_a_store_that_can_write_passes_its_probe(backend: Backend) -> None:
    backend.jobs.probe(time.time())
    backend.jobs.probe(time.time())


def test_releasing_the_window_of_a_finished_job_returns_nothing(backend: Backend) -> None:
    job, chunks = new_job()
    backend.jobs.create_job(job, chunks)
    claim(backend, job, JobStatus.CANCELLED)

    assert backend.chunks.release_window(job.id) == []


# -- outbox -----------------------------------------------------------------------------------


def queued_event(backend: Backend) -> tuple[NewJob, WebhookEvent, float]:
    job, chunks = new_job(webhook=True)
    backend.jobs.create_job(job, chunks)
    at = time.time()
    assert claim(backend, job, at=at)
    [event] = backend.outbox.due_events(at, 10)
    return job, event, at


def event_of(backend: Backend, job_id: JobId) -> WebhookEvent:
    event = stored(backend, job_id).event
    assert event is not None
    return event


def test_a_claimed_completion_event_is_due_at_once(backend: Backend) -> None:
    job, event, at = queued_event(backend)

    assert (event.job_id, event.id) == (job.id, EventId(f"evt_{job.id}"))
    assert event.payload == b'{"type":"job.succeeded"}'
    assert (event.status, event.attempts, event.history) == (DeliveryStatus.PENDING, 0, ())
    assert event.url == "http://127.0.0.1:9/hook"
    assert job.webhook is not None and event.secret == job.webhook.secret
    assert backend.outbox.due_events(at - 60, 10) == []


def test_a_delivered_event_is_no_longer_due(backend: Backend) -> None:
    job, event, at = queued_event(backend)

    backend.outbox.record_attempt(event.id, at + 1, 204, None, None, True)

    assert backend.outbox.due_events(at + 10_000, 10) == []
    got = event_of(backend, job.id)
    assert (got.status, got.attempts) == (DeliveryStatus.DELIVERED, 1)
    assert [(a.status_code, a.error) for a in got.history] == [(204, None)]


def test_a_failed_attempt_with_a_next_time_is_due_again_then(backend: Backend) -> None:
    _, event, at = queued_event(backend)

    backend.outbox.record_attempt(event.id, at + 1, 503, None, at + 100, False)

    assert backend.outbox.due_events(at + 50, 10) == []
    [again] = backend.outbox.due_events(at + 100, 10)
    assert (again.id, again.status, again.attempts) == (event.id, DeliveryStatus.PENDING, 1)
    assert again.next_attempt_at == pytest.approx(at + 100)
    assert [(a.status_code, a.error) for a in again.history] == [(503, None)]


def test_a_failed_attempt_without_a_next_time_gives_up(backend: Backend) -> None:
    job, event, at = queued_event(backend)

    backend.outbox.record_attempt(event.id, at + 1, 500, None, at + 2, False)
    backend.outbox.record_attempt(event.id, at + 3, None, "connection refused", None, False)

    assert backend.outbox.due_events(at + 10_000, 10) == []
    got = event_of(backend, job.id)
    assert (got.status, got.attempts) == (DeliveryStatus.FAILED, 2)
    assert [(a.status_code, a.error) for a in got.history] == [
        (500, None),
        (None, "connection refused"),
    ]
    assert got.history[0].at == pytest.approx(at + 1)


def test_of_two_deliverers_only_one_claims_an_attempt_until_its_lease_runs_out(
    backend: Backend,
) -> None:
    _, event, at = queued_event(backend)

    assert backend.outbox.claim_attempts([event], at + 1, at + 60) == [True]
    assert backend.outbox.claim_attempts([event], at + 1, at + 60) == [False]
    assert backend.outbox.due_events(at + 30, 10) == []
    [again] = backend.outbox.due_events(at + 61, 10)  # the claimer died: due again
    assert backend.outbox.claim_attempts([again], at + 61, at + 120) == [True]


def test_claims_made_in_one_batch_each_stand_alone(backend: Backend) -> None:
    at = time.time()
    jobs = []
    for _ in range(3):
        job, chunks = new_job(webhook=True)
        backend.jobs.create_job(job, chunks)
        assert claim(backend, job, at=at)
        jobs.append(job)
    by_job = {event.job_id: event for event in backend.outbox.due_events(at, 10)}
    taken, recorded, free = (by_job[job.id] for job in jobs)
    assert backend.outbox.claim_attempts([taken], at + 1, at + 60) == [True]
    backend.outbox.record_attempt(recorded.id, at + 1, 503, None, at + 2, False)

    claims = backend.outbox.claim_attempts([taken, recorded, free], at + 1, at + 60)

    # Already claimed, recorded since it was read, still takeable: one refusal takes nothing
    # from the others, and the one taken is not due again before its lease ends.
    assert claims == [False, False, True]
    assert [event.id for event in backend.outbox.due_events(at + 30, 10)] == [recorded.id]
    assert {event.id for event in backend.outbox.due_events(at + 61, 10)} == {
        taken.id,
        recorded.id,
        free.id,
    }
    assert backend.outbox.claim_attempts([], at + 1, at + 60) == []


def test_a_claim_is_renewed_only_by_the_deliverer_still_holding_it(backend: Backend) -> None:
    _, event, at = queued_event(backend)
    assert backend.outbox.claim_attempts([event], at + 1, at + 60) == [True]
    held = structs.replace(event, next_attempt_at=at + 60)

    assert backend.outbox.renew_claim(held, at + 90)
    assert not backend.outbox.renew_claim(held, at + 120)  # that lease is no longer its own
    renewed = structs.replace(event, next_attempt_at=at + 90)
    # The lease ran out and another deliverer claimed the attempt: the first has lost it.
    [again] = backend.outbox.due_events(at + 91, 10)
    assert backend.outbox.claim_attempts([again], at + 91, at + 150) == [True]
    assert not backend.outbox.renew_claim(renewed, at + 200)
    # Once the attempt is recorded, nobody's claim on it can be renewed.
    taken = structs.replace(event, next_attempt_at=at + 150)
    backend.outbox.record_attempt(event.id, at + 92, 503, None, at + 300, False)
    assert not backend.outbox.renew_claim(taken, at + 400)


def test_an_attempt_recorded_after_it_was_read_cannot_be_claimed(backend: Backend) -> None:
    _, event, at = queued_event(backend)

    backend.outbox.record_attempt(event.id, at + 1, 503, None, at + 2, False)

    assert backend.outbox.claim_attempts([event], at + 3, at + 60) == [False]


def test_undelivered_counts_pending_events(backend: Backend) -> None:
    before = backend.outbox.undelivered()
    _, event, at = queued_event(backend)
    assert backend.outbox.undelivered() - before == 1

    backend.outbox.record_attempt(event.id, at + 1, 204, None, None, True)

    assert backend.outbox.undelivered() - before == 0


def test_due_events_returns_at_most_limit_events(backend: Backend) -> None:
    at = time.time()
    for _ in range(3):
        job, chunks = new_job(webhook=True)
        backend.jobs.create_job(job, chunks)
        claim(backend, job, at=at)

    assert len(backend.outbox.due_events(at + 1, 2)) == 2
    assert len(backend.outbox.due_events(at + 1, 10)) == 3


# -- idempotency keys -------------------------------------------------------------------------


def claim_key(
    backend: Backend, key: str, body: str, now: float, tenant: TenantId = TENANT
) -> KeyClaim:
    return backend.idempotency.claim(tenant, key, body, new_job_id(), now, LEASE)


def test_a_new_idempotency_key_is_bound_to_the_job_id_of_its_first_claim(
    backend: Backend,
) -> None:
    job_id, now = new_job_id(), time.time()

    claim = backend.idempotency.claim(TENANT, "k1", "body-a", job_id, now, LEASE)

    assert claim == KeyClaim(job_id, None)


def test_an_idempotency_key_replays_the_finished_response(backend: Backend) -> None:
    keys, now = backend.idempotency, time.time()
    first = claim_key(backend, "k1", "body-a", now)
    keys.finish(TENANT, "k1", b'{"id":"job-1"}')

    assert claim_key(backend, "k1", "body-a", now + 1) == KeyClaim(first.job_id, b'{"id":"job-1"}')


def test_an_idempotency_key_in_progress_conflicts(backend: Backend) -> None:
    now = time.time()
    claim_key(backend, "k1", "body-a", now)

    with pytest.raises(IdempotencyConflict):
        claim_key(backend, "k1", "body-a", now + 1)


def test_an_idempotency_key_held_past_its_lease_is_taken_over_bound_to_the_same_job(
    backend: Backend,
) -> None:
    now = time.time()
    first = claim_key(backend, "k1", "body-a", now)

    taken = claim_key(backend, "k1", "body-a", now + LEASE + 1)

    assert taken == KeyClaim(first.job_id, None)
    with pytest.raises(IdempotencyConflict):  # the new holder has a lease of its own
        claim_key(backend, "k1", "body-a", now + LEASE + 2)


def test_an_idempotency_key_reused_with_another_body_mismatches(backend: Backend) -> None:
    keys, now = backend.idempotency, time.time()
    claim_key(backend, "k1", "body-a", now)

    with pytest.raises(IdempotencyMismatch):
        claim_key(backend, "k1", "body-b", now + 1)
    keys.finish(TENANT, "k1", b"{}")
    with pytest.raises(IdempotencyMismatch):
        claim_key(backend, "k1", "body-b", now + 2)


def test_an_abandoned_idempotency_key_can_be_claimed_again(backend: Backend) -> None:
    keys, now = backend.idempotency, time.time()
    claim_key(backend, "k1", "body-a", now)

    keys.abandon(TENANT, "k1")

    assert claim_key(backend, "k1", "body-b", now + 1).response is None


def test_abandoning_a_finished_idempotency_key_keeps_its_response(backend: Backend) -> None:
    keys, now = backend.idempotency, time.time()
    claim_key(backend, "k1", "body-a", now)
    keys.finish(TENANT, "k1", b"stored")

    keys.abandon(TENANT, "k1")

    assert claim_key(backend, "k1", "body-a", now + 1).response == b"stored"


def test_idempotency_keys_are_scoped_to_the_tenant(backend: Backend) -> None:
    keys, now = backend.idempotency, time.time()
    claim_key(backend, "k1", "body-a", now)
    keys.finish(TENANT, "k1", b"theirs")

    assert claim_key(backend, "k1", "body-b", now, TenantId(OTHER_TENANT)).response is None
    assert claim_key(backend, "k1", "body-a", now).response == b"theirs"
