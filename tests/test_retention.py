"""Retention on SQLite: ended jobs go after FANOUT_RETENTION_DAYS with every row stored for them,
and the file gives the space back. Jobs run through the service and the chunk worker in this
process; time passing is a `now` handed to the store."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from fanout.backends.sqlite.retention import SqliteRetention
from fanout.models import Job, JobStatus, TenantId
from fanout.service import Fanout, JobRequest
from fanout.settings import Settings
from fanout.wiring import build
from fanout.workers import chunk_worker

TENANT = TenantId("tenant-a")
DAY = 86400.0
TABLES = ("jobs", "chunks", "results", "messages", "outbox", "idempotency")


@pytest.fixture
def service(settings: Settings) -> Fanout:
    return build(settings)


def store(service: Fanout) -> SqliteRetention:
    assert isinstance(service.backend.retention, SqliteRetention)
    return service.backend.retention


def run(service: Fanout, items: list[Any], key: str | None = None, **options: Any) -> Job:
    request = JobRequest(task="echo", items=items, params={}, **options)
    if key is None:
        job, _ = service.submit(TENANT, request)
    else:
        service.submit_once(TENANT, request, key, lambda job, secret: job.id.encode())
        [job] = service.list(TENANT, None, None, 1).items
    for _ in range(10 * len(items) + 10):
        if not chunk_worker.poll_once(service):
            break
    ended = service.get(TENANT, job.id)
    assert ended.status is JobStatus.SUCCEEDED
    return ended


def rows(service: Fanout, job_id: str) -> dict[str, int]:
    conn = sqlite3.connect(service.settings.database)
    try:
        key = {"jobs": "id"}
        return {
            table: conn.execute(
                f"SELECT COUNT(*) FROM {table} WHERE {key.get(table, 'job_id')} = ?", (job_id,)
            ).fetchone()[0]
            for table in TABLES
        }
    finally:
        conn.close()


def test_an_ended_job_past_its_retention_goes_with_every_row_stored_for_it(
    service: Fanout,
) -> None:
    job = run(service, list(range(20)), key="key-1", chunk_size=3)
    assert rows(service, job.id)["results"] == 7
    assert rows(service, job.id)["idempotency"] == 1

    assert store(service).purge_expired(job.finished_at or 0, 0.0, 100) == 0  # not yet past it
    assert store(service).purge_expired((job.finished_at or 0) + 2 * DAY, DAY, 100) == 1

    assert rows(service, job.id) == dict.fromkeys(TABLES, 0)


def test_a_job_still_running_or_ended_recently_stays(service: Fanout) -> None:
    ended = run(service, [1, 2, 3])
    running, _ = service.submit(TENANT, JobRequest(task="echo", items=[1, 2], params={}))
    later = (ended.finished_at or 0) + 30 * DAY

    assert store(service).purge_expired(later, 31 * DAY, 100) == 0
    assert store(service).purge_expired(later, 7 * DAY, 100) == 1

    assert service.get(TENANT, running.id).status is JobStatus.QUEUED
    assert rows(service, running.id)["chunks"] == 1


def test_a_job_whose_webhook_is_still_being_delivered_stays_until_it_is_settled(
    service: Fanout,
) -> None:
    job = run(service, [1], webhook_url="http://127.0.0.1:9/hook")
    later = (job.finished_at or 0) + 30 * DAY

    assert store(service).purge_expired(later, DAY, 100) == 0

    conn = sqlite3.connect(service.settings.database)
    with conn:
        conn.execute("UPDATE outbox SET status = 'failed' WHERE job_id = ?", (job.id,))
    conn.close()
    assert store(service).purge_expired(later, DAY, 100) == 1


def test_a_purge_takes_at_most_its_limit_and_the_next_one_goes_on(service: Fanout) -> None:
    jobs = [run(service, [n]) for n in range(5)]
    later = max(job.finished_at or 0 for job in jobs) + 2 * DAY

    assert [store(service).purge_expired(later, DAY, 2) for _ in range(4)] == [2, 2, 1, 0]


def test_idempotency_keys_past_their_day_go_and_fresh_ones_stay(service: Fanout) -> None:
    def render(job: Job, secret: str | None) -> bytes:
        return b"stored"

    service.submit_once(TENANT, JobRequest(task="echo", items=[1], params={}), "old", render)
    conn = sqlite3.connect(service.settings.database)
    with conn:
        conn.execute("UPDATE idempotency SET created_at = created_at - 2 * 86400")
    conn.close()
    service.submit_once(TENANT, JobRequest(task="echo", items=[1], params={}), "new", render)

    store(service).purge_expired(time.time(), 365 * DAY, 100)  # no job is that old

    conn = sqlite3.connect(service.settings.database)
    assert [key for (key,) in conn.execute("SELECT key FROM idempotency")] == ["new"]
    conn.close()


def file_bytes(path: Path) -> int:
    """The database file's size once its log is checkpointed into it."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path.stat().st_size


def test_the_file_gives_back_the_space_of_the_jobs_it_purged(service: Fanout) -> None:
    jobs = [run(service, ["x" * 2000] * 200, chunk_size=50) for _ in range(3)]
    full = file_bytes(service.settings.database)
    later = max(job.finished_at or 0 for job in jobs) + 2 * DAY

    assert store(service).purge_expired(later, DAY, 100) == 3
    while store(service).compact(64):
        pass

    assert file_bytes(service.settings.database) < full / 2


def test_a_file_made_without_incremental_vacuum_reuses_what_a_purge_freed(
    settings: Settings,
) -> None:
    settings.database.parent.mkdir(parents=True)
    conn = sqlite3.connect(settings.database)  # an earlier version's file: auto_vacuum NONE
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE earlier (x)")
    conn.close()
    service = build(settings)
    first = [run(service, ["x" * 2000] * 200, chunk_size=50) for _ in range(3)]
    full = file_bytes(settings.database)
    later = max(job.finished_at or 0 for job in first) + 2 * DAY

    assert store(service).purge_expired(later, DAY, 100) == 3
    assert store(service).compact(64) == 0
    [run(service, ["x" * 2000] * 200, chunk_size=50) for _ in range(3)]

    assert file_bytes(settings.database) <= full * 1.1


def test_the_service_purges_nothing_with_a_retention_of_zero(settings: Settings) -> None:
    service = build(settings.model_copy(update={"retention_days": 0.0}))
    job = run(service, [1, 2])

    assert not service.purges
    assert service.purge() == 0
    assert service.get(TENANT, job.id).status is JobStatus.SUCCEEDED


def test_the_service_purges_ended_jobs_past_the_configured_retention(settings: Settings) -> None:
    service = build(settings.model_copy(update={"retention_days": 1e-9}))  # ~0.1 ms
    job = run(service, [1, 2])

    assert service.purges
    assert service.purge() == 1
    assert rows(service, job.id) == dict.fromkeys(TABLES, 0)
