"""Reading jobs on the SQLite service: an item without an outcome reads `pending` while its
job runs (and `cancelled` once it ended), in the one line shape of every outcome; a listing
filtered by status and paged by cursor; an unknown job's refusal names it.

Written to kill mutants `python -m bench mutation` found surviving in
`fanout/service/reading.py` (issue 13). In tests/contract/ because the mutation run selects this
folder already (changing its selection resets every mutmut verdict).
"""

from __future__ import annotations

import time

import pytest
from pydantic_core import from_json

from fanout.errors import JobNotFound
from fanout.models import JobId, JobStatus, TenantId
from fanout.service import Fanout, JobRequest
from tests.contract.support import echoed, new_job

TENANT = TenantId("tenant-a")


def test_items_without_an_outcome_read_pending_while_the_job_runs_then_cancelled(
    service: Fanout,
) -> None:
    backend = service.backend
    job, chunks = new_job(total=4, chunk_size=2, max_concurrency=1)
    [first] = backend.jobs.create_job(job, chunks)
    assert backend.chunks.start_chunk(first, time.time()) is not None
    backend.chunks.record_chunk_result(first, echoed(first))

    running = service.get(TENANT, job.id)
    lines = list(service.result_lines(running, 0, None))
    service.cancel(TENANT, job.id)
    ended = list(service.result_lines(service.get(TENANT, job.id), 1, 2))

    assert [from_json(line) for line in lines] == [
        {"index": 0, "status": "succeeded", "output": 0},
        {"index": 1, "status": "succeeded", "output": 1},
        {"index": 2, "status": "pending"},
        {"index": 3, "status": "pending"},
    ]
    assert lines[2] == b'{"index":2,"status":"pending"}'
    assert [from_json(line)["status"] for line in ended] == ["succeeded", "cancelled"]


def test_a_listing_filters_by_status_and_pages_by_cursor(service: Fanout) -> None:
    jobs = [
        service.submit(TENANT, JobRequest(task="echo", items=[i], params={}))[0] for i in range(3)
    ]
    service.cancel(TENANT, jobs[1].id)

    cancelled = service.list(TENANT, JobStatus.CANCELLED, None, 10)
    first = service.list(TENANT, None, None, 2)
    rest = service.list(TENANT, None, first.next_cursor, 2)

    assert [j.id for j in cancelled.items] == [jobs[1].id]
    assert first.next_cursor is not None
    listed = [j.id for j in first.items + rest.items]
    assert sorted(listed) == sorted(j.id for j in jobs)
    assert len(set(listed)) == 3


def test_an_unknown_job_s_refusal_names_it(service: Fanout) -> None:
    with pytest.raises(JobNotFound) as unknown:
        service.get(TENANT, JobId("job_unknown"))
    assert str(unknown.value) == "job_unknown"


def test_items_before_the_first_recorded_chunk_read_pending_too(service: Fanout) -> None:
    backend = service.backend
    job, chunks = new_job(total=4, chunk_size=2, max_concurrency=2)
    _, second = backend.jobs.create_job(job, chunks)
    assert backend.chunks.start_chunk(second, time.time()) is not None
    backend.chunks.record_chunk_result(second, echoed(second))

    lines = list(service.result_lines(service.get(TENANT, job.id), 0, None))

    assert lines[:2] == [b'{"index":0,"status":"pending"}', b'{"index":1,"status":"pending"}']
    assert [from_json(line)["status"] for line in lines[2:]] == ["succeeded", "succeeded"]
