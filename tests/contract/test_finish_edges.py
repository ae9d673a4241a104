"""The end of a job through `fanout.service.Fanout`, written once for every backend: the
completion event's payload is the job as a client reads it once it has ended (output, error,
counts with nothing running, the event itself), the event is stored due at once with no
attempt made, where requests are billed the finalize's own requests are counted, and the end is
logged (the job.finished line) and counted in `/metrics` once, under its status.

Written to kill the mutants `python -m bench mutation` found surviving in the finalize path
(`fanout/service/finishing.py`); on the aws backend they also judge what only AWS runs (the
final output file in S3, the event item, the metered requests).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fanout import metrics, task, tasks
from fanout.backends.aws.outputs import S3FinalOutputs, output_key
from fanout.models import Job, JobId, JobStatus, TenantId
from fanout.service import Backend, Fanout, JobRequest
from fanout.settings import Settings
from fanout.views import public_job
from fanout.workers import chunk_worker

TENANT = TenantId("tenant-finish")
HOOK = "http://127.0.0.1:9/hook"


@task(name="test_finish_edges_positive", max_attempts=1)
def positive(item: int) -> int:
    if item < 0:
        raise ValueError(f"item {item} is negative")
    return item


def service_on(backend: Backend, settings: Settings) -> Fanout:
    """The service as `fanout.wiring.build` makes it, on the contract suite's backend."""
    tasks.load(settings.tasks, settings.app_dir)
    return Fanout(backend, settings)


def submit(service: Fanout, items: list[Any], task: str = "echo", **options: Any) -> Job:
    request = JobRequest(task=task, items=items, params={}, webhook_url=HOOK, **options)
    job, _ = service.submit(TENANT, request)
    return job


def run_to_end(service: Fanout, job: Job) -> Job:
    """Chunks run, and where results are counted from a change feed (AWS), counted."""
    for _ in range(200):
        ran = chunk_worker.poll_once(service)
        counted = service.aggregate_changes()
        done = service.get(TENANT, job.id)
        if done.status.terminal:
            return done
        assert ran or counted or service.backend.changes is not None, "stuck before its end"
    raise AssertionError(f"job {job.id} did not end")


def payload_of(job: Job) -> dict[str, Any]:
    assert job.event is not None
    payload: dict[str, Any] = json.loads(job.event.payload)
    return payload


def test_the_event_s_payload_is_the_job_as_a_client_reads_it_once_it_ended(
    backend: Backend, settings: Settings
) -> None:
    service = service_on(backend, settings)
    done = run_to_end(service, submit(service, [1, 2, 3, 4], chunk_size=2))

    data = payload_of(done)["data"]
    view = public_job(done)
    # Where the backend keeps a final output file (AWS: S3) the payload names it; else null.
    assert data["output"] == view["output"]
    assert (data["output"] is None) is (service.backend.outputs is None)
    assert done.event is not None
    assert data["webhook"]["event_id"] == done.event.id
    assert data["webhook"]["status"] == "pending"
    assert data["webhook"]["url"] == HOOK
    assert (data["status"], data["error"], data["finished_at"]) == (
        "succeeded",
        None,
        view["finished_at"],
    )


def test_a_failed_job_s_payload_says_why_it_failed(backend: Backend, settings: Settings) -> None:
    service = service_on(backend, settings)
    done = run_to_end(
        service, submit(service, [1, -2, 3], "test_finish_edges_positive", chunk_size=3)
    )

    data = payload_of(done)["data"]
    assert done.status is JobStatus.FAILED
    assert data["status"] == "failed"
    assert data["error"] == done.error == "1 of 3 items failed, more than tolerated"


def test_a_job_cancelled_with_a_chunk_in_flight_ends_with_nothing_running(
    backend: Backend, settings: Settings
) -> None:
    """The chunk still running when the job is cancelled counts as cancelled, not running, in
    the event (the store's counts still show it started)."""
    service = service_on(backend, settings)
    job = submit(service, [1, 2, 3, 4], chunk_size=2, max_concurrency=1)
    [delivery] = service.receive("worker")
    backend.chunks.start_chunk(delivery.chunk, time.time())

    ended = service.cancel(TENANT, job.id)

    data = payload_of(ended)["data"]
    assert data["status"] == "cancelled"
    assert data["error"] == "cancelled by the client"
    assert data["counts"]["running"] == 0
    assert data["counts"]["succeeded"] + data["counts"]["failed"] == 0


def test_a_cancelled_job_s_final_output_says_cancelled_for_the_items_that_never_ran(
    backend: Backend, settings: Settings
) -> None:
    """The final output file (where the backend keeps one: AWS, S3) is the job's result lines
    as they read once it has ended: an item that never ran is `cancelled`, never `pending`."""
    service = service_on(backend, settings)
    job = submit(service, [1, 2, 3, 4], chunk_size=2, max_concurrency=1)
    [delivery] = service.receive("worker")
    backend.chunks.start_chunk(delivery.chunk, time.time())

    ended = service.cancel(TENANT, job.id)

    expected = [{"index": index, "status": "cancelled"} for index in range(4)]
    read = [json.loads(line) for line in service.result_lines(ended, 0, None)]
    assert read == expected
    if backend.outputs is None:
        assert ended.output is None
        return
    assert ended.output == backend.outputs.location(job.id)
    assert isinstance(backend.outputs, S3FinalOutputs)
    written = backend.outputs.blobs.get(output_key(job.id))
    assert [json.loads(line) for line in written.splitlines()] == expected


def test_the_completion_event_is_stored_due_at_once_with_no_attempt_made(
    backend: Backend, settings: Settings
) -> None:
    service = service_on(backend, settings)
    before = time.time()
    done = run_to_end(service, submit(service, [1, 2]))

    event = done.event
    assert event is not None
    assert (event.job_id, event.url, event.attempts, event.history) == (done.id, HOOK, 0, ())
    assert event.status.value == "pending"
    assert before <= event.next_attempt_at <= time.time()
    assert done.finished_at is not None and event.next_attempt_at <= done.finished_at + 1


def test_where_requests_are_billed_the_finalize_s_own_are_counted(
    backend: Backend, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The requests the finalize makes (writing the output, claiming the end, storing the
    event) are metered into the job's usage where requests are billed (AWS); SQLite bills
    none and counts none."""
    service = service_on(backend, settings)
    job = submit(service, [1, 2], chunk_size=2)
    [delivery] = service.receive("worker")
    asked: list[JobId] = []

    def held(job_id: JobId) -> bool:  # the finalize the last record asks for, held back
        asked.append(job_id)
        return False

    with monkeypatch.context() as patched:
        patched.setattr(service, "finalize", held)
        service.process(delivery)
        service.aggregate_changes()
    before = service.get(TENANT, job.id).usage.requests
    assert asked == [job.id]

    assert service.finalize(job.id)

    after = service.get(TENANT, job.id).usage.requests
    if service.backend.outputs is None and not before:
        assert after == {}
        return
    grown = {kind: after[kind] - before.get(kind, 0.0) for kind in after}
    assert grown["s3 put requests"] >= 1  # the final output file
    assert grown["dynamodb write units"] > 1  # more than the terminal write's own unit


def finished_counted(service: Fanout) -> dict[str, float]:
    """`fanout_jobs_finished_total` by status, as `/metrics` serves it."""
    body, _ = metrics.exposition(service, None)
    return {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == "fanout_jobs_finished_total"
    }


def test_a_job_s_end_is_logged_and_counted_once_under_its_status(
    backend: Backend, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    service = service_on(backend, settings)
    job = submit(service, [1, -2], "test_finish_edges_positive", chunk_size=1)
    before = finished_counted(service)

    with caplog.at_level(logging.INFO, logger="fanout.jobs"):
        done = run_to_end(service, job)

    after = finished_counted(service)
    assert {s: after[s] - before.get(s, 0.0) for s in after} == {
        "succeeded": 0.0,
        "failed": 1.0,
        "cancelled": 0.0,
    }
    [line] = [r for r in caplog.records if getattr(r, "event", None) == "job.finished"]
    assert line.__dict__["job_id"] == done.id
    assert line.__dict__["status"] == "failed"
    assert line.__dict__["counts"] == {"total": 2, "succeeded": 1, "failed": 1, "cancelled": 0}
    assert done.finished_at is not None
    assert line.__dict__["duration_s"] == round(done.finished_at - done.created_at, 3)
