"""Deleting removed jobs' objects through `fanout.service.Fanout` (`delete_job_objects`, for a
stream batch as Lambda delivers it, and `delete_job_objects_changes`, its poller's round),
written once for every backend: records that remove no job item delete nothing, and a backend
that keeps nothing of a job apart from its store (SQLite) deletes nothing whatever the records
say, and its poller has no feed to read. The deletions themselves: `tests/aws/test_job_objects.py`.
"""

from __future__ import annotations

from typing import Any

from fanout import tasks, wiring
from fanout.models import Job, JobId, TenantId
from fanout.service import Backend, Fanout, JobRequest
from fanout.settings import Settings
from fanout.workers import chunk_worker

TENANT = TenantId("tenant-objects")
# Two of these in a chunk make a result over the AWS store's inline limit: an S3 object, which
# reading the results reads back.
LARGE = "x" * 4000


def ended(backend: Backend, settings: Settings) -> tuple[Fanout, Job]:
    tasks.load(settings.tasks, settings.app_dir)
    service = Fanout(backend, settings)
    request = JobRequest(task="echo", items=[LARGE] * 4, params={}, chunk_size=2)
    job, _ = service.submit(TENANT, request)
    for _ in range(50):
        chunk_worker.poll_once(service)
        service.aggregate_changes()
        job = service.get(TENANT, job.id)
        if job.status.terminal:
            return service, job
    raise AssertionError("the job did not end")


def record(event: str, job_id: JobId, sk: str) -> dict[str, Any]:
    """A change record about an item of `job_id`, as a DynamoDB stream delivers it."""
    keys = {"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": sk}}
    return {"eventName": event, "eventSource": "aws:dynamodb", "dynamodb": {"Keys": keys}}


def drain(service: Fanout) -> int:
    read = 0
    while batch := service.delete_job_objects_changes():
        read += batch
    return read


def test_records_that_remove_no_job_item_delete_nothing(
    backend: Backend, settings: Settings
) -> None:
    service, job = ended(backend, settings)
    lines = list(service.result_lines(job, 0, None))
    records = [
        record("INSERT", job.id, "JOB"),
        record("MODIFY", job.id, "JOB"),
        record("REMOVE", job.id, "RESULT#0"),
    ]

    assert service.delete_job_objects(records) == {}
    drain(service)  # the feed's records, where there is one: this job's inserts and updates

    assert list(service.result_lines(service.get(TENANT, job.id), 0, None)) == lines


def test_a_backend_keeping_nothing_apart_from_its_store_deletes_nothing_for_a_removal(
    settings: Settings,
) -> None:
    """SQLite: `purge` removes a job with everything stored for it; a removal record (which its
    store never writes) is ignored, and there is no deleter to run beside the workers."""
    service, job = ended(wiring.sqlite_backend(settings), settings)
    lines = list(service.result_lines(job, 0, None))

    assert service.delete_job_objects([record("REMOVE", job.id, "JOB")]) == {}
    assert service.delete_job_objects_changes() == 0
    assert not service.deletes_job_objects
    assert list(service.result_lines(service.get(TENANT, job.id), 0, None)) == lines
