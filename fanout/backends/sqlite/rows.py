"""A job as its row reads (with its completion event's, joined), and the statuses and chunk
states the store's parts select on."""

from __future__ import annotations

import sqlite3
from typing import Any

from pydantic_core import from_json

from fanout.models import (
    ChunkRef,
    DeliveryAttempt,
    DeliveryStatus,
    EventId,
    Job,
    JobId,
    JobOptions,
    JobStatus,
    TenantId,
    Usage,
    WebhookEvent,
)

ACTIVE = ("queued", "running")


IN_FLIGHT = ("released", "running")


JOB_COLUMNS = """
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


JOB_FROM = "FROM jobs j LEFT JOIN outbox o ON o.job_id = j.id"


def event_from_row(
    row: sqlite3.Row | tuple[Any, ...], offset: int, job_id: str
) -> WebhookEvent | None:
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


def job_from_row(row: tuple[Any, ...]) -> Job:
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
        event=event_from_row(row, 17, row[0]),
        usage=Usage(chunks=row[25], attempts=row[26], worker_seconds=row[27]),
        redrive_count=row[28],
        deadline=row[29],
    )


def chunk_refs(job_id: JobId, rows: list[tuple[int, int]]) -> list[ChunkRef]:
    return [ChunkRef(job_id, start, end) for start, end in rows]
