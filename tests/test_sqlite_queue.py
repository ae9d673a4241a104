"""What the SQLite queue promises beyond the ChunkQueue contract (which SQS does not)."""

from __future__ import annotations

from fanout.backends.sqlite import Database, SqliteChunkQueue
from fanout.models import ChunkRef, JobId
from fanout.settings import Settings
from tests.waiting import wait_until

A = ChunkRef(JobId("job-1"), 0, 10)


def test_deleting_with_a_stale_receipt_does_nothing(settings: Settings) -> None:
    queue = SqliteChunkQueue(Database(settings.database), max_receive_count=3)
    queue.send([A])
    [stale] = queue.receive(10, 0.05)
    [current] = wait_until(lambda: queue.receive(10, 0.05), 5.0)

    queue.delete(stale.receipt)

    [again] = wait_until(lambda: queue.receive(10, 300), 5.0)
    assert (again.chunk, again.receive_count) == (A, 3)
    assert current.receipt != stale.receipt
