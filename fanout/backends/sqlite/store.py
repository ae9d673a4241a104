"""The job, chunk, outbox and idempotency stores on SQLite.

Fan-in is exact because recording a chunk result is one transaction: insert the result only if
the chunk is still live, move the job's counters, mark the chunk done, release the next chunk
of the window into the queue and delete the recorded chunk's message. A repeat finds the chunk
done and changes nothing. Every release enqueues its chunks in the transaction that releases
them (the queue is in the same file), so no crash can leave a released chunk without a message.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from pydantic_core import from_json, to_json

from fanout.backends.sqlite.db import Database
from fanout.backends.sqlite.queue import enqueue
from fanout.backends.sqlite.recent import RecentReads
from fanout.backends.sqlite.redrive import redrive
from fanout.errors import IdempotencyConflict, IdempotencyMismatch, JobExists, StoreUnavailable
from fanout.models import (
    ChunkInput,
    ChunkRef,
    ChunkResult,
    DeliveryAttempt,
    DeliveryStatus,
    EventId,
    Job,
    JobId,
    JobOptions,
    JobStatus,
    KeyClaim,
    NewJob,
    Page,
    RecordOutcome,
    TenantId,
    Usage,
    WebhookEvent,
)

ACTIVE = ("queued", "running")
IN_FLIGHT = ("released", "running")
IDEMPOTENCY_TTL = 24 * 3600.0
MIN_FREE_BYTES = 1 << 20  # below this the store is not ready: a job's chunks would not fit

_JOB_COLUMNS = """
    j.id, j.tenant, j.task, j.status, j.params, j.options, j.max_concurrency, j.webhook_url,
    j.total, j.succeeded, j.failed, j.created_at, j.started_at, j.finished_at, j.reduce_value,
    j.error,
    CASE WHEN j.status IN ('queued', 'running') THEN
        (SELECT COALESCE(SUM(c."end" - c.start), 0) FROM chunks c
            WHERE c.job_id = j.id AND c.state = 'running')
    ELSE 0 END AS running,
    o.event_id, o.url, o.secret, o.payload, o.status, o.attempts, o.next_attempt_at, o.history,
    j.chunks_run, j.attempts, j.worker_seconds, j.redrive_count, j.deadline
"""
_JOB_FROM = "FROM jobs j LEFT JOIN outbox o ON o.job_id = j.id"


def _event(row: sqlite3.Row | tuple[Any, ...], offset: int, job_id: str) -> WebhookEvent | None:
    event_id, url, secret, payload, status, attempts, next_at, history = row[offset : offset + 8]
    if event_id is None:
        return None
    return WebhookEvent(
        id=EventId(event_id),
        job_id=JobId(job_id),
        url=url,
        secret=secret,
        payload=payload,
        status=DeliveryStatus(status),
        attempts=attempts,
        next_attempt_at=next_at,
        history=tuple(DeliveryAttempt(**a) for a in from_json(history)),
    )


def _options(job: NewJob) -> bytes:
    """The options but the window, which lives in its own column (it changes while running)."""
    options = dataclasses.asdict(job.options)
    del options["max_concurrency"]
    return to_json(options)


def _job(row: tuple[Any, ...]) -> Job:
    options = from_json(row[5])
    options["max_concurrency"] = row[6]  # files of earlier versions also kept it here
    return Job(
        id=JobId(row[0]),
        tenant=TenantId(row[1]),
        task=row[2],
        status=JobStatus(row[3]),
        params=from_json(row[4]),
        options=JobOptions(**options),
        webhook_url=row[7],
        total=row[8],
        succeeded=row[9],
        failed=row[10],
        created_at=row[11],
        started_at=row[12],
        finished_at=row[13],
        reduce_value=None if row[14] is None else from_json(row[14]),
        error=row[15],
        running=row[16],
        event=_event(row, 17, row[0]),
        usage=Usage(chunks=row[25], attempts=row[26], worker_seconds=row[27]),
        redrive_count=row[28],
        deadline=row[29],
    )


class _LiveChunk(NamedTuple):
    state: str
    items: bytes
    total: int
    succeeded: int
    failed: int
    window: int
    job_running: bool


def _refs(job_id: JobId, rows: list[tuple[int, int]]) -> list[ChunkRef]:
    return [ChunkRef(job_id, start, end) for start, end in rows]


class SqliteStore:
    """Implements JobStore, ChunkStore, Reconcilable, Outbox and IdempotencyStore."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._jobs: RecentReads[Job | None] = RecentReads(db)

    # -- jobs ---------------------------------------------------------------------------------

    def create_job(self, job: NewJob, chunks: Sequence[ChunkInput]) -> list[ChunkRef]:
        deadline = (
            job.created_at + job.options.timeout_seconds if job.options.timeout_seconds else None
        )
        window = job.options.max_concurrency
        released = [ChunkRef(job.id, c.start, c.end) for c in chunks[:window]]
        with self.db.write(durable=True) as conn:
            if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job.id,)).fetchone():
                raise JobExists(job.id)
            conn.execute(
                "INSERT INTO jobs (id, tenant, task, status, params, options, max_concurrency,"
                " webhook_url, webhook_secret, total, created_at, deadline, updated_at)"
                " VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
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
                ),
            )
            conn.executemany(
                'INSERT INTO chunks (job_id, start, "end", state, items) VALUES (?, ?, ?, ?, ?)',
                (
                    (job.id, c.start, c.end, "released" if i < window else "pending", c.items_json)
                    for i, c in enumerate(chunks)
                ),
            )
            enqueue(conn, released)
        return released

    def get_job(self, job_id: JobId, tenant: TenantId | None = None) -> Job | None:
        """The job as last read on this thread while the file has not changed since (polled
        jobs mostly have not: `recent.RecentReads`); a Job is immutable, so it can be shared."""
        job = self._jobs.get(job_id, lambda: self._read_job(job_id))
        if job is None or (tenant is not None and job.tenant != tenant):
            return None
        return job

    def _read_job(self, job_id: JobId) -> Job | None:
        row = (
            self.db.connection()
            .execute(f"SELECT {_JOB_COLUMNS} {_JOB_FROM} WHERE j.id = ?", (job_id,))
            .fetchone()
        )
        return None if row is None else _job(row)

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
                f"SELECT {_JOB_COLUMNS}, j.seq {_JOB_FROM} WHERE {' AND '.join(where)}"
                " ORDER BY j.seq DESC LIMIT ?",
                (*args, limit + 1),
            )
            .fetchall()
        )
        next_cursor = str(rows[limit - 1][-1]) if len(rows) > limit else None
        return Page([_job(row) for row in rows[:limit]], next_cursor)

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

    # -- chunks -------------------------------------------------------------------------------

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
            lost = _refs(
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
        released = _refs(job_id, rows)
        enqueue(conn, released)
        return released

    # -- reconciler ---------------------------------------------------------------------------

    def jobs_to_reconcile(self, now: float, stale_after: float) -> list[Job]:
        rows = (
            self.db.connection()
            .execute(
                f"SELECT {_JOB_COLUMNS} {_JOB_FROM} WHERE j.status IN (?, ?) AND"
                " (j.succeeded + j.failed = j.total OR j.deadline < ? OR j.updated_at < ?)",
                (*ACTIVE, now, now - stale_after),
            )
            .fetchall()
        )
        return [_job(row) for row in rows]

    # -- outbox -------------------------------------------------------------------------------

    def due_events(self, now: float, limit: int) -> list[WebhookEvent]:
        rows = (
            self.db.connection()
            .execute(
                "SELECT event_id, url, secret, payload, status, attempts, next_attempt_at, history,"
                " job_id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?"
                " ORDER BY next_attempt_at LIMIT ?",
                (now, limit),
            )
            .fetchall()
        )
        return [e for row in rows if (e := _event(row, 0, row[8])) is not None]

    def claim_attempt(self, event: WebhookEvent, now: float, lease_until: float) -> bool:
        with self.db.write() as conn:
            return (
                conn.execute(
                    "UPDATE outbox SET next_attempt_at = ? WHERE event_id = ?"
                    " AND status = 'pending' AND attempts = ? AND next_attempt_at <= ?",
                    (lease_until, event.id, event.attempts, now),
                ).rowcount
                == 1
            )

    def renew_claim(self, event: WebhookEvent, lease_until: float) -> bool:
        with self.db.write() as conn:
            return (
                conn.execute(
                    "UPDATE outbox SET next_attempt_at = ? WHERE event_id = ?"
                    " AND status = 'pending' AND attempts = ? AND next_attempt_at = ?",
                    (lease_until, event.id, event.attempts, event.next_attempt_at),
                ).rowcount
                == 1
            )

    def undelivered(self) -> int:
        (count,) = (
            self.db.connection()
            .execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
            .fetchone()
        )
        return int(count)

    def record_attempt(
        self,
        event_id: EventId,
        at: float,
        status_code: int | None,
        error: str | None,
        next_attempt_at: float | None,
        delivered: bool,
    ) -> None:
        status = DeliveryStatus.after_attempt(delivered, next_attempt_at)
        attempt = to_json({"at": at, "status_code": status_code, "error": error}).decode()
        with self.db.write() as conn:
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, status = ?,"
                " next_attempt_at = COALESCE(?, next_attempt_at),"
                " history = json_insert(history, '$[#]', json(?)) WHERE event_id = ?",
                (status, next_attempt_at, attempt, event_id),
            )

    # -- idempotency keys ---------------------------------------------------------------------

    def claim(
        self, tenant: TenantId, key: str, fingerprint: str, job_id: JobId, now: float, lease: float
    ) -> KeyClaim:
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT fingerprint, response, created_at, job_id, claimed_at FROM idempotency"
                " WHERE tenant = ? AND key = ?",
                (tenant, key),
            ).fetchone()
            if row is None or row[2] < now - IDEMPOTENCY_TTL:
                conn.execute(
                    "INSERT OR REPLACE INTO idempotency"
                    " (tenant, key, fingerprint, created_at, job_id, claimed_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (tenant, key, fingerprint, now, job_id, now),
                )
                return KeyClaim(job_id)
            held, response, _, bound, claimed_at = row
            if held != fingerprint:
                raise IdempotencyMismatch(key)
            if response is not None:
                return KeyClaim(JobId(bound), response)
            if claimed_at > now - lease:
                raise IdempotencyConflict(key)
            conn.execute(  # its holder is gone: take the key over, bound to the same job
                "UPDATE idempotency SET claimed_at = ? WHERE tenant = ? AND key = ?",
                (now, tenant, key),
            )
            return KeyClaim(JobId(bound))

    def finish(self, tenant: TenantId, key: str, response: bytes) -> None:
        with self.db.write() as conn:
            conn.execute(
                "UPDATE idempotency SET response = ? WHERE tenant = ? AND key = ?",
                (response, tenant, key),
            )

    def abandon(self, tenant: TenantId, key: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                "DELETE FROM idempotency WHERE tenant = ? AND key = ? AND response IS NULL",
                (tenant, key),
            )
