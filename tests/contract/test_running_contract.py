"""Running a delivered chunk through `fanout.service.Fanout`, written once for every backend: the
job shows as started from when its first chunk starts, at that time.

Written to kill a mutant `python -m bench mutation` found surviving in `Running._run` (the time
it starts a chunk at): on SQLite the queue stamps it as it delivers, on AWS `start_chunk` does.
"""

from __future__ import annotations

import time

from fanout import task
from fanout.models import Job, JobStatus, TenantId
from fanout.service import Backend, Fanout, JobRequest
from fanout.settings import Settings
from tests.waiting import wait_until

TENANT = TenantId("tenant-a")


@task(name="test_running_contract_same")
def same(item: int) -> int:
    return item


def test_a_job_is_started_at_the_time_its_first_chunk_starts(
    backend: Backend, settings: Settings
) -> None:
    service = Fanout(backend, settings)
    job, _ = service.submit(
        TENANT, JobRequest(task="test_running_contract_same", items=[1, 2], params={}, chunk_size=1)
    )
    assert service.get(TENANT, job.id).started_at is None
    before = time.time()

    [delivery] = service.receive("worker")
    service.process(delivery)

    after = time.time()
    got = service.get(TENANT, job.id)
    assert got.status is JobStatus.RUNNING
    assert got.started_at is not None and before <= got.started_at <= after


def test_a_job_s_usage_counts_the_requests_its_chunks_made_where_they_are_billed(
    backend: Backend, settings: Settings
) -> None:
    """On AWS a chunk's run reads the job and writes its start and result: its read units show
    in the job's usage once its result is counted (submitting reads nothing). SQLite bills no
    requests: its usage has none."""
    service = Fanout(backend, settings)
    request = JobRequest(task="test_running_contract_same", items=[1, 2], params={}, chunk_size=1)
    job, _ = service.submit(TENANT, request)
    submitted = dict(service.get(TENANT, job.id).usage.requests)
    assert "dynamodb read units" not in submitted

    [delivery] = service.receive("worker")
    service.process(delivery)

    def counted() -> Job | None:
        service.aggregate_changes()  # the stream's fan-in (AWS); nothing to do on SQLite
        got = service.get(TENANT, job.id)
        return got if got.succeeded == 1 else None

    usage = wait_until(counted, 30, "the chunk's result to be counted").usage
    if not service.backend.metered:
        assert usage.requests == submitted == {}
        return
    assert usage.requests["dynamodb read units"] > 0
    assert usage.requests["dynamodb write units"] > submitted["dynamodb write units"]
