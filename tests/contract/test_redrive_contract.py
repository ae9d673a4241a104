"""`JobStore.redrive`, written once for every backend: which items a redrive makes pending, what
it keeps, and what it refuses."""

from __future__ import annotations

import time

import pytest
from pydantic_core import from_json

from fanout.errors import JobNotFinished, NothingToRedrive
from fanout.models import ChunkRef, JobStatus
from fanout.service import Backend
from tests.contract.support import chunk_refs, echoed, new_job, record
from tests.contract.test_store_contract import claim, lines_of, run, stored

FAILED = frozenset({3, 4, 9})


def test_a_redrive_releases_only_the_failed_runs_and_keeps_every_other_outcome(
    backend: Backend,
) -> None:
    job, chunks = new_job(total=10, chunk_size=2, max_concurrency=5, webhook=True)
    for chunk in backend.jobs.create_job(job, chunks):
        run(backend, chunk, FAILED)
    assert claim(backend, job, JobStatus.FAILED)

    released = backend.jobs.redrive(job.id, time.time())
    assert released == [ChunkRef(job.id, 3, 4), ChunkRef(job.id, 4, 5), ChunkRef(job.id, 9, 10)]
    again = stored(backend, job.id)
    assert (again.status, again.succeeded, again.failed, again.pending) == (
        JobStatus.QUEUED,
        7,
        0,
        3,
    )
    assert (again.redrive_count, again.event) == (1, None)
    # The failed items read pending; the others keep their outcome, in input order.
    kept = [(o["index"], o["status"]) for o in lines_of(backend, job.id)]
    assert kept == [(i, "succeeded") for i in (0, 1, 2, 5, 6, 7, 8)]

    for chunk in released:
        items = backend.chunks.start_chunk(chunk, time.time())
        assert items is not None and from_json(items) == list(range(chunk.start, chunk.end))
        outcome = record(backend, chunk, echoed(chunk))
        assert outcome.counted
    assert outcome.complete, "the last redriven chunk completes the job"
    done = stored(backend, job.id)
    assert (done.succeeded, done.failed) == (10, 0)
    assert [o["output"] for o in lines_of(backend, job.id)] == list(range(10))


def test_a_cancelled_job_redrives_the_chunks_that_never_ran(backend: Backend) -> None:
    job, chunks = new_job(total=6, chunk_size=2, max_concurrency=1)
    first = backend.jobs.create_job(job, chunks)
    run(backend, first[0])
    assert claim(backend, job, JobStatus.CANCELLED)
    assert stored(backend, job.id).cancelled == 4

    released = backend.jobs.redrive(job.id, time.time())
    assert released == chunk_refs(job, chunks)[1:2], "the window is 1"
    assert stored(backend, job.id).pending == 4


def test_a_running_job_or_one_that_all_succeeded_is_refused(backend: Backend) -> None:
    job, chunks = new_job(total=2, chunk_size=2)
    [chunk] = backend.jobs.create_job(job, chunks)
    with pytest.raises(JobNotFinished):
        backend.jobs.redrive(job.id, time.time())
    run(backend, chunk)
    assert claim(backend, job)
    with pytest.raises(NothingToRedrive):
        backend.jobs.redrive(job.id, time.time())
    assert stored(backend, job.id).status is JobStatus.SUCCEEDED
