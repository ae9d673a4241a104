"""`JobStore.redrive` at its edges, for every backend: outputs that look like failures or hold
whitespace, runs of several outcomes kept whole, a timed job's fresh deadline, and refusals
that name the job (their text is the problem's `detail`)."""

from __future__ import annotations

import time

import pytest

from fanout.errors import JobNotFinished, JobNotFound, NothingToRedrive
from fanout.models import ChunkRef, ChunkResult, JobId, JobStatus
from fanout.service import Backend
from tests.contract.support import new_job, record
from tests.contract.test_store_contract import claim, lines_of, run, stored

SUCCEEDED = b'{"index":%d,"status":"succeeded","output":%s}'
FAILED = b'{"index":%d,"status":"failed","error":{"type":"ValueError","message":"no","attempts":1}}'


def result(lines: list[bytes], failed: int = 0) -> ChunkResult:
    return ChunkResult(succeeded=len(lines) - failed, failed=failed, lines=b"\n".join(lines))


def test_a_redrive_keeps_whole_runs_and_outputs_that_hold_spaces_or_the_word_failed(
    backend: Backend,
) -> None:
    """Chunk 0-3 succeeded, one output being an object {"status": "failed"} (so the text
    `"status":"failed"` is in its lines, but no item failed); chunk 3-6 keeps a run of two
    outcomes, one with spaces and a newline escape in its output, before its failed item."""
    job, chunks = new_job(total=6, chunk_size=3, max_concurrency=2)
    first, second = backend.jobs.create_job(job, chunks)
    for chunk in (first, second):
        assert backend.chunks.start_chunk(chunk, time.time()) is not None
    looks_failed = [
        SUCCEEDED % (0, b'"a"'),
        SUCCEEDED % (1, b'{"status":"failed"}'),
        SUCCEEDED % (2, b'"c"'),
    ]
    record(backend, first, result(looks_failed))
    spaced = [SUCCEEDED % (3, b'"x y\\nz"'), SUCCEEDED % (4, b'"w v"'), FAILED % 5]
    record(backend, second, result(spaced, failed=1))
    assert claim(backend, job, JobStatus.FAILED)

    released = backend.jobs.redrive(job.id, time.time())

    assert released == [ChunkRef(job.id, 5, 6)]
    kept = [(o["index"], o["output"]) for o in lines_of(backend, job.id)]
    assert kept == [(0, "a"), (1, {"status": "failed"}), (2, "c"), (3, "x y\nz"), (4, "w v")]
    again = stored(backend, job.id)
    assert (again.succeeded, again.failed, again.pending) == (5, 0, 1)


def test_a_redriven_job_with_a_timeout_gets_a_whole_timeout_from_the_redrive(
    backend: Backend,
) -> None:
    """Its old deadline (creation plus the timeout) has passed: kept, the job would time out
    again at once."""
    long_ago = time.time() - 3600
    job, chunks = new_job(total=2, chunk_size=2, timeout_seconds=60.0, created_at=long_ago)
    [chunk] = backend.jobs.create_job(job, chunks)
    assert stored(backend, job.id).deadline == pytest.approx(long_ago + 60.0, abs=0.01)
    run(backend, chunk, frozenset({1}))
    assert claim(backend, job, JobStatus.FAILED)

    now = time.time()
    backend.jobs.redrive(job.id, now)

    assert stored(backend, job.id).deadline == pytest.approx(now + 60.0, abs=0.01)


def test_each_refused_redrive_says_which_job_and_why(backend: Backend) -> None:
    job, chunks = new_job(total=2, chunk_size=2)
    [chunk] = backend.jobs.create_job(job, chunks)
    unknown = JobId("job_unknown")

    with pytest.raises(JobNotFound) as not_found:
        backend.jobs.redrive(unknown, time.time())
    with pytest.raises(JobNotFinished) as not_finished:
        backend.jobs.redrive(job.id, time.time())
    run(backend, chunk)
    assert claim(backend, job)
    with pytest.raises(NothingToRedrive) as nothing:
        backend.jobs.redrive(job.id, time.time())

    assert str(not_found.value) == "job_unknown"
    assert str(not_finished.value) == f"job {job.id} is queued: redrive it once it has ended"
    assert str(nothing.value) == f"every item of job {job.id} succeeded"
