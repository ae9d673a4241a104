"""The job, chunk, outbox and idempotency stores on SQLite.

Fan-in is exact because recording a chunk result is one transaction: insert the result only if
the chunk is still live, move the job's counters, mark the chunk done, release the next chunk
of the window into the queue and delete the recorded chunk's message. A repeat finds the chunk
done and changes nothing. Every release enqueues its chunks in the transaction that releases
them (the queue is in the same file), so no crash can leave a released chunk without a message.
"""

from __future__ import annotations

from fanout.backends.sqlite.chunks import SqliteChunkStore
from fanout.backends.sqlite.idempotency import SqliteIdempotencyStore
from fanout.backends.sqlite.jobs import SqliteJobStore
from fanout.backends.sqlite.outbox import SqliteOutbox


class SqliteStore(SqliteJobStore, SqliteChunkStore, SqliteOutbox, SqliteIdempotencyStore):
    """Implements JobStore, ChunkStore, Reconcilable, Outbox and IdempotencyStore on one
    database: each port's adapter, in one object for `fanout.wiring`."""
