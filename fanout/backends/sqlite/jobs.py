"""Jobs on SQLite (the `JobStore` and `Reconcilable` ports): created with their chunks and
first window in one durable transaction, read back with their results, changed, finished once."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from msgspec import structs
from pydantic_core import to_json

from fanout.backends.sqlite.creation import Creation
from fanout.backends.sqlite.db import Database
from fanout.backends.sqlite.recent import RecentReads, SameRows
from fanout.backends.sqlite.redrive import redrive
from fanout.backends.sqlite.rows import ACTIVE, JOB_COLUMNS, JOB_FROM, job_from_row
from fanout.backends.sqlite.window import SqliteWindow
from fanout.errors import StoreUnavailable
from fanout.models import (
    ChunkInput,
    ChunkRef,
    Job,
    JobId,
    JobStatus,
    NewJob,
    Page,
    TenantId,
    WebhookEvent,
)

# A job read is kept for the next poll (`recent.RecentReads`) only up to this many bytes in its
# client-sized columns: every thread that reads keeps its own.
KEEP_BYTES = 16 * 1024
# Listed jobs each listing thread keeps decoded by their row (`recent.SameRows`): the largest
# page (100) and then some.
LISTED = 256
MIN_FREE_BYTES = 1 << 20  # below this the store is not ready: a job's chunks would not fit


def _options(job: NewJob) -> bytes:
    """The options but the window, which lives in its own column (it changes while running)."""
    options = structs.asdict(job.options)
    del options["max_concurrency"]
    return to_json(options)


def _small(row: tuple[Any, ...]) -> bool:
    """Whether a job's row is small enough to keep decoded for the next read: its params,
    reduced value, error, webhook payload and history are the columns that grow with the
    client's input."""
    sized = (row[4], row[14], row[15], row[20], row[24])
    return sum(len(part) for part in sized if part is not None) <= KEEP_BYTES


class SqliteJobStore(SqliteWindow):
    def __init__(self, db: Database) -> None:
        self.db = db
        self._jobs: RecentReads[Job | None] = RecentReads(db)
        self._listed: SameRows[Job] = SameRows(LISTED)

    def create_job(self, job: NewJob, chunks: Sequence[ChunkInput]) -> list[ChunkRef]:
        deadline = (
            job.created_at + job.options.timeout_seconds if job.options.timeout_seconds else None
        )
        window = job.options.max_concurrency
        released = [ChunkRef(job.id, c.start, c.end) for c in chunks[:window]]
        row = (
            job.id,
            job.tenant,
            job.task,
            to_json(job.params),
            _options(job),
            window,
            job.webhook.url if job.webhook else None,
            job.webhook.secret if job.webhook else None,
            job.total,
            job.created_at,
            deadline,
            job.created_at,
        )
        chunk_rows = [
            (job.id, c.start, c.end, "released" if i < window else "pending", c.items_json)
            for i, c in enumerate(chunks)
        ]

        # Run by whichever thread has the write turn, with the submits queued beside it.
        self.db.run(Creation(job.id, row, chunk_rows, released), durable=True)
        return released

    def get_job(self, job_id: JobId, tenant: TenantId | None = None) -> Job | None:
        """The job as last read on this thread while the file has not changed since (polled
        jobs mostly have not: `recent.RecentReads`); a Job is immutable, so it can be shared."""
        job = self._jobs.get(job_id, lambda: self._read_job(job_id))
        if job is None or (tenant is not None and job.tenant != tenant):
            return None
        return job

    def _read_job(self, job_id: JobId) -> tuple[Job | None, bool]:
        """The job, and whether it is small enough to keep for the next poll (`_small`). A row
        this thread listed before, unchanged, gives the same Job as then (`recent.SameRows`)."""
        row = (
            self.db.connection()
            .execute(f"SELECT {JOB_COLUMNS} {JOB_FROM} WHERE j.id = ?", (job_id,))
            .fetchone()
        )
        if row is None:
            return None, True
        return self._listed.decode(row, job_from_row), _small(row)

    def list_jobs(
        self, tenant: TenantId, status: JobStatus | None, cursor: str | None, limit: int
    ) -> Page:
        where, args = ["j.tenant = ?"], [str(tenant)]
        if status is not None:
            where.append("j.status = ?")
            args.append(status.value)
        if cursor is not None:
            where.append("j.seq < ?")
            args.append(cursor)
        rows = (
            self.db.connection()
            .execute(
                f"SELECT {JOB_COLUMNS}, j.seq {JOB_FROM} WHERE {' AND '.join(where)}"
                " ORDER BY j.seq DESC LIMIT ?",
                (*args, limit + 1),
            )
            .fetchall()
        )
        next_cursor = str(rows[limit - 1][-1]) if len(rows) > limit else None
        keep = self._listed.keep
        return Page(
            [keep(row[:-1], job_from_row, _small(row)) for row in rows[:limit]], next_cursor
        )

    def set_max_concurrency(self, job_id: JobId, max_concurrency: int) -> list[ChunkRef]:
        with self.db.write() as conn:
            changed = conn.execute(
                "UPDATE jobs SET max_concurrency = ? WHERE id = ? AND status IN (?, ?)",
                (max_concurrency, job_id, *ACTIVE),
            ).rowcount
            return self._release(conn, job_id, max_concurrency) if changed else []

    def unstarted_chunks(self) -> int:
        """Counted on a partial index: chunks leave it when they start or their job ends."""
        (count,) = (
            self.db.connection()
            .execute("SELECT COUNT(*) FROM chunks WHERE state IN ('pending', 'released')")
            .fetchone()
        )
        return int(count)

    def probe(self, now: float) -> None:
        """A write, and the free space left: a write can still succeed on a full disk while
        the WAL file has room to reuse, and the next larger one fails."""
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = ?",
                (now, now),
            )
        stat = os.statvfs(self.db.path.parent)
        free = stat.f_bavail * stat.f_frsize
        if free < MIN_FREE_BYTES:
            raise StoreUnavailable(f"{free} bytes free in {self.db.path.parent}")

    def result_blocks(self, job_id: JobId, start: int) -> Iterator[tuple[int, bytes]]:
        """Each recorded chunk's (first index, outcome lines) from item `start` on, in order."""
        conn = self.db.connection()
        position = start
        while True:
            rows = conn.execute(
                'SELECT start, lines, "end" FROM results WHERE job_id = ? AND "end" > ?'
                " ORDER BY start LIMIT 64",
                (job_id, position),
            ).fetchall()
            if not rows:
                return
            for first, lines, _ in rows:
                yield first, lines
            position = rows[-1][2]

    def claim_completion(
        self,
        job_id: JobId,
        status: JobStatus,
        finished_at: float,
        reduce_value: Any,
        error: str | None,
        event: WebhookEvent | None,
        requests: Mapping[str, float] | None = None,
    ) -> bool:
        now = finished_at
        with self.db.write() as conn:
            claimed = conn.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, updated_at = ?, reduce_value = ?,"
                " error = ? WHERE id = ? AND status IN (?, ?)",
                (
                    status,
                    now,
                    now,
                    None if reduce_value is None else to_json(reduce_value),
                    error,
                    job_id,
                    *ACTIVE,
                ),
            ).rowcount
            if not claimed:
                return False
            # Chunks that never ran are no longer waiting to start; they keep their inputs,
            # which a redrive runs (retention purges them with the job).
            conn.execute(
                "UPDATE chunks SET state = 'dropped'"
                " WHERE job_id = ? AND state IN ('pending', 'released')",
                (job_id,),
            )
            if event is not None:
                conn.execute(
                    "INSERT INTO outbox (event_id, job_id, url, secret, payload, status,"
                    " next_attempt_at) VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                    (event.id, job_id, event.url, event.secret, event.payload, now),
                )
            return True

    def redrive(self, job_id: JobId, now: float) -> list[ChunkRef]:
        with self.db.write() as conn:
            redrive(conn, job_id, now)
            (window,) = conn.execute(
                "SELECT max_concurrency FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            return self._release(conn, job_id, window)

    def webhook_secret(self, job_id: JobId) -> str | None:
        row = (
            self.db.connection()
            .execute("SELECT webhook_secret FROM jobs WHERE id = ?", (job_id,))
            .fetchone()
        )
        return None if row is None else row[0]

    def jobs_to_reconcile(self, now: float, stale_after: float) -> list[Job]:
        rows = (
            self.db.connection()
            .execute(
                f"SELECT {JOB_COLUMNS} {JOB_FROM} WHERE j.status IN (?, ?) AND"
                " (j.succeeded + j.failed = j.total OR j.deadline < ? OR j.updated_at < ?)",
                (*ACTIVE, now, now - stale_after),
            )
            .fetchall()
        )
        return [job_from_row(row) for row in rows]
