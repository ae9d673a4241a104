"""What the contract tests share: jobs built as `Fanout.submit` stores them, constants, and the
rule for a part a test needs that cannot start (the moto server): skipped on a laptop, a failure
in CI."""

from __future__ import annotations

import os
import time
from typing import NoReturn

import pytest
from pydantic_core import to_json

from fanout.models import (
    ChunkInput,
    ChunkRef,
    ChunkResult,
    Counted,
    JobOptions,
    NewJob,
    RecordOutcome,
    TenantId,
    Webhook,
)
from fanout.service import Backend, new_job_id

MAX_RECEIVE_COUNT = 3
TENANT = TenantId("tenant-a")
OTHER_TENANT = TenantId("tenant-b")


class BackendUnavailable(Exception):
    """A backend's service (an emulator, a cloud account) cannot be reached."""


def in_ci() -> bool:
    """This run is CI's: `CI` is set and not false. `.ci/run` exports CI=true, as GitHub
    Actions, GitLab CI and most CI platforms do; there no test may skip (tests/conftest.py
    turns any skip into a failure)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(part: str, error: Exception) -> NoReturn:
    """`part` (e.g. "the moto server") cannot start: skip the test on a laptop, where an
    optional part may be missing; fail it in CI, where everything must run."""
    if in_ci():
        pytest.fail(f"{part} is unavailable, and CI={os.environ['CI']!r} runs every test: {error}")
    pytest.skip(f"{part} is unavailable: {error}")


def new_job(
    total: int = 10,
    chunk_size: int = 2,
    max_concurrency: int = 2,
    tenant: TenantId = TENANT,
    webhook: bool = False,
    timeout_seconds: float | None = None,
    created_at: float | None = None,
) -> tuple[NewJob, list[ChunkInput]]:
    """A job whose items are 0..total-1, in chunks of `chunk_size`."""
    job = NewJob(
        id=new_job_id(),
        tenant=tenant,
        task="echo",
        params={},
        options=JobOptions(
            chunk_size=chunk_size,
            max_concurrency=max_concurrency,
            max_attempts=3,
            timeout_seconds=timeout_seconds,
        ),
        webhook=Webhook("http://127.0.0.1:9/hook", "whsec_c2VjcmV0LXNlY3JldA==")
        if webhook
        else None,
        total=total,
        created_at=time.time() if created_at is None else created_at,
    )
    chunks = []
    for start in range(0, total, chunk_size):
        end = min(start + chunk_size, total)
        chunks.append(ChunkInput(start, end, to_json(list(range(start, end)))))
    return job, chunks


def echoed(chunk: ChunkRef, failed: frozenset[int] = frozenset()) -> ChunkResult:
    """The result of a chunk whose items succeeded with themselves as output, except `failed`."""
    lines = [
        b'{"index":%d,"status":"failed","error":{"type":"ValueError","message":"no",'
        b'"attempts":1}}' % i
        if i in failed
        else b'{"index":%d,"status":"succeeded","output":%d}' % (i, i)
        for i in range(chunk.start, chunk.end)
    ]
    bad = len(failed & set(range(chunk.start, chunk.end)))
    return ChunkResult(succeeded=chunk.size - bad, failed=bad, lines=b"\n".join(lines))


def chunk_refs(job: NewJob, chunks: list[ChunkInput]) -> list[ChunkRef]:
    return [ChunkRef(job.id, c.start, c.end) for c in chunks]


def fan_in(backend: Backend) -> list[Counted]:
    """What an asynchronous fan-in (AWS: the stream aggregator) counts of the results recorded
    so far: the change feed read to its end, as the stream poller reads it. Nothing for a
    backend that counts as it records."""
    counted: list[Counted] = []
    if backend.fan_in is None or backend.changes is None:
        return counted
    while batches := backend.changes.read(100):
        for batch in batches:
            counted += backend.fan_in.count(batch.records)
            backend.changes.commit(batch)
    return counted


def record(backend: Backend, chunk: ChunkRef, result: ChunkResult) -> RecordOutcome:
    """Record a chunk's result and let the fan-in count it: the two steps as one outcome."""
    outcome = backend.chunks.record_chunk_result(chunk, result)
    later = fan_in(backend)
    assert all(c.chunk == chunk for c in later), "the fan-in counted another chunk's result"
    return RecordOutcome(
        counted=outcome.counted,
        released=outcome.released + [ref for c in later for ref in c.outcome.released],
        complete=outcome.complete or any(c.outcome.complete for c in later),
    )
