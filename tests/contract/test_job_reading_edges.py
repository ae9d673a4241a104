"""What reading a job back gives, on the SQLite service: the usage its chunks recorded (chunk
runs, item attempts, worker seconds, each in its own field), the completion event's job id,
the shape of a job id (12 hex digits of its creation in milliseconds, then 16 random), and an
idempotency fingerprint that tells apart two requests with other items, whatever their form.

Written to kill mutants `python -m bench mutation` found surviving in
`fanout/backends/sqlite/rows.py` and `fanout/service/submission.py` (issue 13). In
tests/contract/ because the mutation run selects this folder already (changing its selection
resets every mutmut verdict).
"""

from __future__ import annotations

import re
import time

import pytest

from fanout.errors import IdempotencyMismatch
from fanout.models import ChunkResult, Job, TenantId
from fanout.service import Fanout, JobRequest, new_job_id
from tests.contract.support import new_job

TENANT = TenantId("tenant-a")


def test_a_job_reads_back_the_usage_its_chunks_recorded(service: Fanout) -> None:
    backend = service.backend
    job, chunks = new_job(total=4, chunk_size=2, max_concurrency=2)
    first, second = backend.jobs.create_job(job, chunks)
    for chunk, attempts, seconds in ((first, 2, 0.25), (second, 3, 0.5)):
        assert backend.chunks.start_chunk(chunk, time.time()) is not None
        lines = b"\n".join(
            b'{"index":%d,"status":"succeeded","output":%d}' % (i, i)
            for i in range(chunk.start, chunk.end)
        )
        result = ChunkResult(2, 0, lines, attempts=attempts, seconds=seconds)
        backend.chunks.record_chunk_result(chunk, result)

    usage = service.get(TENANT, job.id).usage

    assert (usage.chunks, usage.attempts, usage.worker_seconds) == (2, 5, 0.75)


def test_a_job_s_completion_event_names_the_job(service: Fanout) -> None:
    request = JobRequest(task="echo", items=[1], params={}, webhook_url="http://127.0.0.1:9/h")
    job, _ = service.submit(TENANT, request)
    service.cancel(TENANT, job.id)

    ended: Job = service.get(TENANT, job.id)

    assert ended.event is not None
    assert (ended.event.job_id, ended.event.id) == (job.id, f"evt_{job.id}")


def test_a_job_id_is_its_creation_in_milliseconds_then_sixteen_random_hex_digits() -> None:
    before = time.time_ns() // 1_000_000
    job_id = new_job_id()
    after = time.time_ns() // 1_000_000

    assert re.fullmatch(r"[0-9a-f]{28}", job_id)
    assert before <= int(job_id[:12], 16) <= after
    assert new_job_id()[12:] != job_id[12:]


def render(job: Job, secret: str | None) -> bytes:
    return job.id.encode()


def test_a_key_reused_with_other_items_is_a_mismatch_and_with_the_same_stream_a_replay(
    service: Fanout,
) -> None:
    """The fingerprint holds the items' digest: the request's `items` may be a stream, read
    once, so the request's own field cannot stand for them."""

    def request(items: list[int]) -> JobRequest:
        return JobRequest(task="echo", items=iter(items), params={})

    first = service.submit_once(TENANT, request([1, 2]), "key-1", render)

    assert service.submit_once(TENANT, request([1, 2]), "key-1", render) == first
    with pytest.raises(IdempotencyMismatch):
        service.submit_once(TENANT, request([1, 3]), "key-1", render)
