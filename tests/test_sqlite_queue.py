"""What the SQLite queue promises beyond the ChunkQueue contract (which SQS does not)."""

from __future__ import annotations

from fanout.backends.sqlite import Database, SqliteChunkQueue
from fanout.models import ChunkRef, JobId, JobStatus, TenantId
from fanout.service import JobRequest
from fanout.settings import Settings
from fanout.wiring import build
from tests.waiting import wait_until

A = ChunkRef(JobId("job-1"), 0, 10)
TENANT = TenantId("tenant-a")


def test_deleting_with_a_stale_receipt_does_nothing(settings: Settings) -> None:
    queue = SqliteChunkQueue(Database(settings.database), max_receive_count=3)
    queue.send([A])
    [stale] = queue.receive(10, 0.05)
    [current] = wait_until(lambda: queue.receive(10, 0.05), 5.0)

    queue.delete(stale.receipt)

    [again] = wait_until(lambda: queue.receive(10, 300), 5.0)
    assert (again.chunk, again.receive_count) == (A, 3)
    assert current.receipt != stale.receipt


def test_a_delivered_chunk_and_its_job_are_running_from_the_delivery_on(
    settings: Settings,
) -> None:
    """The queue starts what it delivers in the same transaction, so starting it is a read."""
    service = build(settings)
    request = JobRequest(task="echo", items=[1, 2, 3, 4], params={}, chunk_size=4)
    job, _ = service.submit(TENANT, request)
    assert service.get(TENANT, job.id).status is JobStatus.QUEUED

    [delivery] = service.backend.queue.receive(1, 300)

    running = service.get(TENANT, job.id)
    assert (running.status, running.running) == (JobStatus.RUNNING, 4)
    assert running.started_at is not None
    assert service.backend.chunks.start_chunk(delivery.chunk, 0.0) == b"[1,2,3,4]"
    assert service.get(TENANT, job.id).started_at == running.started_at
