"""What the SQLite queue promises beyond the ChunkQueue contract (which SQS does not)."""

from __future__ import annotations

import sqlite3

from fanout.backends.sqlite import Database, SqliteChunkQueue
from fanout.backends.sqlite.queue import CHUNKS, VISIBLE
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


def test_a_receive_walks_the_queue_in_order_without_sorting_the_backlog(
    settings: Settings,
) -> None:
    """A sort of every visible message on each receive made a long backlog slow to drain."""
    db = Database(settings.database)
    plan = db.connection().execute(f"EXPLAIN QUERY PLAN {VISIBLE}", (CHUNKS, 0.0, 1)).fetchall()

    assert "messages_fifo" in str(plan)
    assert "TEMP B-TREE" not in str(plan)


def test_a_file_made_with_the_sorting_index_loses_it_when_opened(settings: Settings) -> None:
    Database(settings.database).close()
    with sqlite3.connect(settings.database) as conn:
        conn.execute("CREATE INDEX messages_visible ON messages (queue, visible_at)")

    names = [
        row[0]
        for row in Database(settings.database)
        .connection()
        .execute("SELECT name FROM sqlite_master WHERE tbl_name = 'messages' AND type = 'index'")
    ]

    assert "messages_fifo" in names
    assert "messages_visible" not in names


def test_handed_back_and_new_messages_come_out_oldest_first(settings: Settings) -> None:
    queue = SqliteChunkQueue(Database(settings.database), max_receive_count=3)
    chunks = [ChunkRef(JobId("job-1"), i, i + 1) for i in range(4)]
    queue.send(chunks)
    [first] = queue.receive(1, 300)
    queue.release(first.receipt)

    delivered = queue.receive(10, 300)

    assert [d.chunk for d in delivered] == chunks
