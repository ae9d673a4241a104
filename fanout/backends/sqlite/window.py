"""The window on SQLite: pending chunks released in input order, into the queue in the same
transaction, until `max_concurrency` are in flight."""

from __future__ import annotations

import sqlite3

from fanout.backends.sqlite.db import Database
from fanout.backends.sqlite.queue import enqueue
from fanout.backends.sqlite.rows import IN_FLIGHT, chunk_refs
from fanout.models import ChunkRef, JobId


class SqliteWindow:
    """What the job store and the chunk store share: the database, and releasing."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _release(self, conn: sqlite3.Connection, job_id: JobId, window: int) -> list[ChunkRef]:
        """Release pending chunks, in input order, until `window` chunks are in flight."""
        (in_flight,) = conn.execute(
            "SELECT COUNT(*) FROM chunks WHERE job_id = ? AND state IN (?, ?)",
            (job_id, *IN_FLIGHT),
        ).fetchone()
        if in_flight >= window:
            return []
        rows = conn.execute(
            "SELECT start, \"end\" FROM chunks WHERE job_id = ? AND state = 'pending'"
            " ORDER BY start LIMIT ?",
            (job_id, window - in_flight),
        ).fetchall()
        conn.executemany(
            "UPDATE chunks SET state = 'released' WHERE job_id = ? AND start = ? AND \"end\" = ?",
            ((job_id, start, end) for start, end in rows),
        )
        released = chunk_refs(job_id, rows)
        enqueue(conn, released)
        return released
