"""Polled reads on SQLite (`fanout.backends.sqlite.recent`): a job read again while nothing has
changed the file is the object read before; a commit from this process's writer, from another
process, or through the reading connection itself is seen at the very next read."""

from __future__ import annotations

import subprocess
import sys

from fanout.backends.sqlite import SqliteStore
from fanout.backends.sqlite.recent import RecentReads
from fanout.models import Job, JobStatus, TenantId
from fanout.service import Fanout, JobRequest

TENANT = TenantId("tenant-a")
CANCEL_ELSEWHERE = """
import sys
from fanout.models import JobId, TenantId
from fanout.settings import Settings
from fanout.wiring import build
build(Settings(data_dir=sys.argv[1])).cancel(TenantId(sys.argv[2]), JobId(sys.argv[3]))
"""


def submitted(service: Fanout) -> Job:
    job, _ = service.submit(TENANT, JobRequest(task="echo", items=[1, 2, 3], params={}))
    return job


def store_of(service: Fanout) -> SqliteStore:
    store = service.backend.jobs
    assert isinstance(store, SqliteStore)
    return store


def test_a_job_with_large_params_is_read_afresh_each_time(service: Fanout) -> None:
    params = {"blob": "x" * 20_000}
    job, _ = service.submit(TENANT, JobRequest(task="echo", items=[1], params=params))

    assert service.get(TENANT, job.id) is not service.get(TENANT, job.id)
    assert service.get(TENANT, job.id).params == params


def test_a_job_read_again_while_nothing_changed_is_the_object_read_before(
    service: Fanout,
) -> None:
    job = submitted(service)

    assert service.get(TENANT, job.id) is service.get(TENANT, job.id)


def test_a_change_committed_by_this_process_is_seen_at_the_next_read(service: Fanout) -> None:
    job = submitted(service)
    assert service.get(TENANT, job.id).status is JobStatus.QUEUED

    service.cancel(TENANT, job.id)

    assert service.get(TENANT, job.id).status is JobStatus.CANCELLED


def test_a_change_committed_by_another_process_is_seen_at_the_next_read(
    service: Fanout,
) -> None:
    job = submitted(service)
    assert service.get(TENANT, job.id).status is JobStatus.QUEUED
    data_dir = str(service.settings.data_dir)

    subprocess.run(
        [sys.executable, "-c", CANCEL_ELSEWHERE, data_dir, TENANT, job.id], check=True, timeout=60
    )

    assert service.get(TENANT, job.id).status is JobStatus.CANCELLED


def test_a_write_through_the_reading_connection_itself_is_seen(service: Fanout) -> None:
    store = store_of(service)
    job = submitted(service)
    assert service.get(TENANT, job.id).succeeded == 0

    store.db.connection().execute("UPDATE jobs SET succeeded = 2 WHERE id = ?", (job.id,))

    assert service.get(TENANT, job.id).succeeded == 2


def test_a_job_read_for_one_tenant_is_not_found_for_another(service: Fanout) -> None:
    job = submitted(service)
    assert store_of(service).get_job(job.id, TENANT) is not None

    assert store_of(service).get_job(job.id, TenantId("tenant-b")) is None


def test_the_reads_kept_are_bounded_and_a_new_connection_reads_afresh(service: Fanout) -> None:
    db = store_of(service).db
    reads: list[str] = []
    recent: RecentReads[str] = RecentReads(db, limit=2)

    def read(key: str) -> None:
        def fresh() -> tuple[str, bool]:
            reads.append(key)
            return key, True

        recent.get(key, fresh)

    for key in ("a", "b", "a", "c", "a"):
        read(key)
    assert reads == ["a", "b", "c", "a"]  # c found two kept, so the next a is read again

    db.close()
    read("a")
    assert reads[-1] == "a" and len(reads) == 5


def test_reads_alone_keep_no_rows_only_listings_do(service: Fanout) -> None:
    """Each submit reads the job it stored, on one of many threads: were those rows kept, every
    thread would hold its bound of jobs never read again."""
    jobs = [submitted(service) for _ in range(5)]
    first = [service.get(TENANT, job.id) for job in jobs]
    service.cancel(TENANT, jobs[0].id)  # the file changes: the next reads read again

    assert all(
        service.get(TENANT, job.id) is not old for job, old in zip(jobs[1:], first[1:], strict=True)
    )
