"""Chunks on SQLite (the `ChunkStore` port). Recording a result is one transaction: the result
inserted only while the chunk is live, the job's counters moved, the chunk marked done, the
window's next chunk released and the recorded chunk's message deleted."""

from __future__ import annotations

import sqlite3
import time
from typing import NamedTuple

from pydantic_core import from_json, to_json

from fanout.backends.sqlite.queue import enqueue
from fanout.backends.sqlite.rows import ACTIVE, IN_FLIGHT, chunk_refs
from fanout.backends.sqlite.window import SqliteWindow
from fanout.models import ChunkRef, ChunkResult, JobId, RecordOutcome


class _LiveChunk(NamedTuple):
    state: str
    items: bytes
    total: int
    succeeded: int
    failed: int
    window: int
    job_running: bool


class SqliteChunkStore(SqliteWindow):
    def _live(self, conn: sqlite3.Connection, chunk: ChunkRef) -> _LiveChunk | None:
        """The chunk, if it is in flight and its job has not ended; None otherwise."""
        row = conn.execute(
            "SELECT c.state, c.items, j.total, j.succeeded, j.failed, j.max_concurrency,"
            " j.status = 'running' AND j.started_at IS NOT NULL"
            " FROM chunks c JOIN jobs j ON j.id = c.job_id"
            ' WHERE c.job_id = ? AND c.start = ? AND c."end" = ? AND j.status IN (?, ?)',
            (chunk.job_id, chunk.start, chunk.end, *ACTIVE),
        ).fetchone()
        return None if row is None or row[0] not in IN_FLIGHT else _LiveChunk(*row)

    def _set_state(
        self, conn: sqlite3.Connection, chunk: ChunkRef, state: str, keep: bool = False
    ) -> None:
        """Move a chunk on; its input is dropped once it is done or split, unless `keep` (a
        chunk with failed items keeps it, for a redrive)."""
        conn.execute(
            "UPDATE chunks SET state = ?, items = CASE WHEN ? THEN items END"
            ' WHERE job_id = ? AND start = ? AND "end" = ?',
            (state, keep or state == "running", chunk.job_id, chunk.start, chunk.end),
        )

    def start_chunk(self, chunk: ChunkRef, now: float) -> bytes | None:
        # The queue marks a chunk and its job running as it delivers the chunk, in the same
        # transaction (queue.start_received): then starting it is a read.
        live = self._live(self.db.connection(), chunk)
        if live is not None and live.state == "running" and live.job_running:
            return live.items
        with self.db.write() as conn:
            live = self._live(conn, chunk)
            if live is None:
                return None
            if live.state != "running":
                self._set_state(conn, chunk, "running")
            conn.execute(
                "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, ?),"
                " updated_at = ? WHERE id = ?",
                (now, now, chunk.job_id),
            )
            return live.items

    def record_chunk_result(
        self, chunk: ChunkRef, result: ChunkResult, receipt: str | None = None
    ) -> RecordOutcome:
        with self.db.write() as conn:
            if receipt is not None:
                conn.execute("DELETE FROM messages WHERE receipt = ?", (receipt,))
            live = self._live(conn, chunk)
            if live is None:
                return RecordOutcome(counted=False)
            conn.execute(
                'INSERT INTO results (job_id, start, "end", lines) VALUES (?, ?, ?, ?)',
                (chunk.job_id, chunk.start, chunk.end, result.lines),
            )
            self._set_state(conn, chunk, "done", keep=result.failed > 0)
            conn.execute(
                "UPDATE jobs SET succeeded = succeeded + ?, failed = failed + ?, updated_at = ?,"
                " chunks_run = chunks_run + 1, attempts = attempts + ?,"
                " worker_seconds = worker_seconds + ? WHERE id = ?",
                (
                    result.succeeded,
                    result.failed,
                    time.time(),
                    result.attempts,
                    result.seconds,
                    chunk.job_id,
                ),
            )
            recorded = live.succeeded + live.failed + result.succeeded + result.failed
            complete = recorded == live.total
            released = [] if complete else self._release(conn, chunk.job_id, live.window)
            return RecordOutcome(counted=True, released=released, complete=complete)

    def split_chunk(self, chunk: ChunkRef) -> list[ChunkRef]:
        with self.db.write() as conn:
            live = self._live(conn, chunk)
            if live is None or chunk.size < 2:
                return []
            items = from_json(live.items)
            middle = chunk.size // 2
            halves = [
                (ChunkRef(chunk.job_id, chunk.start, chunk.start + middle), items[:middle]),
                (ChunkRef(chunk.job_id, chunk.start + middle, chunk.end), items[middle:]),
            ]
            self._set_state(conn, chunk, "split")
            conn.executemany(
                'INSERT INTO chunks (job_id, start, "end", state, items)'
                " VALUES (?, ?, ?, 'released', ?)",
                ((half.job_id, half.start, half.end, to_json(part)) for half, part in halves),
            )
            enqueue(conn, [half for half, _ in halves])
            return [half for half, _ in halves]

    def release_window(self, job_id: JobId) -> list[ChunkRef]:
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT max_concurrency FROM jobs WHERE id = ? AND status IN (?, ?)",
                (job_id, *ACTIVE),
            ).fetchone()
            if row is None:
                return []
            conn.execute("UPDATE jobs SET updated_at = ? WHERE id = ?", (time.time(), job_id))
            # Exactly the in-flight chunks without a message: nothing is sent twice.
            lost = chunk_refs(
                job_id,
                conn.execute(
                    'SELECT c.start, c."end" FROM chunks c WHERE c.job_id = ? AND c.state IN (?, ?)'
                    " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.job_id = c.job_id"
                    ' AND m.start = c.start AND m."end" = c."end")',
                    (job_id, *IN_FLIGHT),
                ).fetchall(),
            )
            enqueue(conn, lost)
            return lost + self._release(conn, job_id, row[0])
