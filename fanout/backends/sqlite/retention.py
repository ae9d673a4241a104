"""Retention on SQLite: ended jobs go once their retention has passed, and the file shrinks.

DynamoDB expires items itself (TTL); one SQLite file keeps everything until it is deleted. Each
purge transaction removes a few jobs with everything stored for them (chunks, results, queue
messages, the outbox row, idempotency keys), so the write lock is held for milliseconds and the
workers' transactions interleave with it. Pages freed this way are reused by later writes, so
the file stops growing under a steady load; a file made with `auto_vacuum=INCREMENTAL` (every
file this version creates) also gives them back to the file system, a bounded number per
transaction (https://www.sqlite.org/pragma.html#pragma_incremental_vacuum).
"""

from __future__ import annotations

import sqlite3

from fanout.backends.sqlite.db import Database
from fanout.backends.sqlite.idempotency import IDEMPOTENCY_TTL

TERMINAL = ("succeeded", "failed", "cancelled")
# The tables holding a job's rows besides `jobs`, each indexed by its job id.
JOB_ROWS = ("results", "chunks", "messages", "outbox", "idempotency")
INCREMENTAL = 2  # PRAGMA auto_vacuum's answer for INCREMENTAL


class SqliteRetention:
    def __init__(self, db: Database) -> None:
        self.db = db

    def purge_expired(self, now: float, retention: float, limit: int) -> int:
        """Delete up to `limit` ended jobs that finished more than `retention` seconds before
        `now` and whose webhook is settled (delivered, or failed for good), with all their rows,
        and as many idempotency keys past their own expiry (a key no longer replays anything
        then); one transaction. Returns how many jobs went."""
        finished_before = now - retention
        with self.db.write() as conn:
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM jobs j WHERE finished_at < ? AND status IN (?, ?, ?)"
                    " AND NOT EXISTS (SELECT 1 FROM outbox o"
                    " WHERE o.job_id = j.id AND o.status = 'pending') LIMIT ?",
                    (finished_before, *TERMINAL, limit),
                )
            ]
            for job_id in ids:
                _delete_job(conn, job_id)
            conn.execute(
                "DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency"
                " WHERE created_at < ? AND response IS NOT NULL LIMIT ?)",
                (now - IDEMPOTENCY_TTL, limit),
            )
            return len(ids)

    def compact(self, max_pages: int) -> int:
        """Give up to `max_pages` free pages back to the file system; returns how many were
        free before (0 for a file made without incremental auto-vacuum: its free pages are
        only reused)."""
        conn = self.db.connection()
        (mode,) = conn.execute("PRAGMA auto_vacuum").fetchone()
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        if mode != INCREMENTAL or not free:
            return 0
        # As a script: sqlite3's execute() steps a statement without result columns once, and
        # this pragma frees one page per step.
        script = f"BEGIN IMMEDIATE; PRAGMA incremental_vacuum({int(max_pages)}); COMMIT;"
        try:
            conn.executescript(script)
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return int(free)


def _delete_job(conn: sqlite3.Connection, job_id: str) -> None:
    for table in JOB_ROWS:
        conn.execute(f"DELETE FROM {table} WHERE job_id = ?", (job_id,))
    conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
