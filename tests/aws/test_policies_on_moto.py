"""Each function's role allows every request the function makes: the cost benchmark's pipeline
(API, chunk worker, aggregator and finalize, notifier, and the event sources as Lambda runs
them) on the emulator, then the other functions' work (listing, results, an upload, a cancel
and redrives through the API — of a cancelled job and of one with failed items —, a dead letter
split, a reconciler sweep, an input file ingested, a removed job's objects deleted), every
request recorded with the function that made it and checked against the table of
`tests/test_infra_policies.py`, resource by resource.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from bench import cost_pipeline
from bench.cost_meter import Meter, phase
from bench.cost_pipeline import JobSpec, Pipeline
from fanout import task
from fanout.api.schemas import JobCreate
from fanout.backends.aws.blobs import S3Blobs
from fanout.backends.aws.job_objects import S3JobObjects
from fanout.backends.aws.redrive import Redrive
from fanout.backends.aws.store import DynamoJobStore
from fanout.backends.aws.table import chunk_key
from fanout.models import ChunkRef, JobId, TenantId
from fanout.service import Fanout
from fanout.workers import lambda_handlers
from tests.aws.lambda_events import s3_event
from tests.contract.support import unavailable
from tests.test_infra_policies import ALLOWED, LISTABLE

TENANT = TenantId("default")
ODD_FAILS = "tests_policies_odd_fails"


@task(name=ODD_FAILS, max_attempts=1)
def odd_fails(item: int) -> int:
    if item % 2:
        raise ValueError(f"{item} is odd")
    return item


# Who makes the requests of each phase of the pipeline: a function, or its event source (which
# uses the function's role).
FUNCTION_OF_PHASE = {
    cost_pipeline.API: "ApiFunction",
    cost_pipeline.WORKER: "ChunkWorkerFunction",
    cost_pipeline.AGGREGATOR: "AggregatorFunction",
    cost_pipeline.FINALIZE: "AggregatorFunction",
    cost_pipeline.STREAM_SOURCE: "AggregatorFunction",
    cost_pipeline.NOTIFIER: "NotifierFunction",
    "dead letter": "DeadLetterFunction",
    "reconciler": "ReconcilerFunction",
    "s3 ingest": "S3IngestFunction",
    "job objects": "JobObjectsFunction",
}
# An SQS event source polls for the function its queue feeds.
FUNCTION_OF_QUEUE = {"ChunkQueue": "ChunkWorkerFunction", "NotifyQueue": "NotifierFunction"}
# Batch requests are authorized as the single-message action; HeadObject as GetObject.
ACTION = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
    "HeadObject": "GetObject",
    "ListObjectsV2": "ListBucket",
    "DeleteObjects": "DeleteObject",
}
# Requests whose objects the meter does not see (it records a request's `Key`): what the
# job-objects function listed and deleted is recorded key by key instead.
BY_KEY = {"ListObjectsV2", "DeleteObjects"}


class Recording:
    """The S3 client the job-objects function is given, recording the prefixes it lists and
    the keys it deletes."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[tuple[str, str]] = []

    def list_objects_v2(self, **request: Any) -> Any:
        self.calls.append(("ListObjectsV2", request["Prefix"]))
        return self.client.list_objects_v2(**request)

    def delete_objects(self, **request: Any) -> Any:
        self.calls += [("DeleteObjects", o["Key"]) for o in request["Delete"]["Objects"]]
        return self.client.delete_objects(**request)


def the_other_functions(pipeline: Pipeline) -> list[tuple[str, str]]:
    """What the cost pipeline does not run: the rest of the API, the dead-letter splitter, the
    reconciler and the S3 ingest, each through its handler or service call, in its phase."""
    service = pipeline.service
    with phase(cost_pipeline.API):
        assert service.list(TENANT, None, None, 10).items
        done = service.get(TENANT, JobId(pipeline.job_id))
        list(service.result_lines(done, 0, None))
        request = JobCreate.model_validate({"task": "echo", "items": [1, 2, 3, 4], "chunk_size": 2})
        job, _ = service.submit(TENANT, request.to_request())
        target = service.create_upload(TENANT, "jsonl")
    assert httpx.put(target.url, content=b"1\n2\n", headers=target.headers).status_code == 200
    with phase(cost_pipeline.API):
        uploaded = JobCreate.model_validate({"task": "echo", "items_url": target.items_url})
        service.submit(TENANT, uploaded.to_request())
    chunk = ChunkRef(JobId(job.id), 0, 2)
    body = json.dumps({"job_id": job.id, "start": chunk.start, "end": chunk.end})
    with phase("dead letter"):
        record = {**cost_pipeline.sqs_record(_message(body)), "attributes": _received(3)}
        lambda_handlers.handle_dead_letters(service, {"Records": [record]})
    assert service.backend.jobs.get_job(job.id) is not None
    assert pipeline.setup.dynamodb.get_item(
        TableName=pipeline.settings.table, Key=_encoded(chunk_key(chunk))
    )["Item"]["state"] == {"S": "split"}
    with phase("reconciler"):
        service.reconcile()
    with phase(cost_pipeline.API):
        service.cancel(TENANT, JobId(job.id))
        service.redrive(TENANT, JobId(job.id))  # the items the cancel left: read again
        failing = JobCreate.model_validate({"task": ODD_FAILS, "items": [1, 2, 3, 4]})
        partly, _ = service.submit(TENANT, failing.to_request())
        cut_short, _ = service.submit(TENANT, failing.to_request())
    for failed in (partly, cut_short):
        pipeline.run_to_end(failed.id, time.monotonic() + 60)
        assert service.get(TENANT, JobId(failed.id)).failed == 2
    with phase(cost_pipeline.API):
        # The failed items' inputs are read back from the job's input object.
        service.redrive(TENANT, JobId(partly.id))
        # A redrive whose API call died after its first step...
        store = service.backend.jobs
        assert isinstance(store, DynamoJobStore)
        Redrive(store).commit(JobId(cut_short.id), time.time())
    with phase("reconciler"):
        # ...is finished by the reconciler's step for such a job.
        service.backend.chunks.release_window(JobId(cut_short.id))
    assert service.get(TENANT, JobId(cut_short.id)).status == "queued"
    bucket = pipeline.settings.bucket
    pipeline.setup.s3.put_object(Bucket=bucket, Key="jobs/echo/items.jsonl", Body=b"1\n2\n")
    event = s3_event(pipeline.setup.s3, str(bucket), "jobs/echo/items.jsonl")
    with phase("s3 ingest"):
        assert len(lambda_handlers.handle_input_files(service, event, pipeline.counted.s3)) == 1
    # The redriven job's item removed (by TTL on AWS), and its removal as the filter passes it.
    key = {"pk": {"S": f"JOB#{partly.id}"}, "sk": {"S": "JOB"}}
    pipeline.setup.dynamodb.delete_item(TableName=pipeline.settings.table, Key=key)
    removed = {"Records": [{"eventName": "REMOVE", "dynamodb": {"Keys": key}}]}
    # The service, its deleter's client recording what it lists and deletes.
    s3 = Recording(pipeline.counted.s3)
    objects = S3JobObjects(S3Blobs(bucket, s3))
    recording = Fanout(replace(service.backend, job_objects=objects), service.settings)
    with phase("job objects"):
        assert lambda_handlers.handle_removed_jobs(recording, removed)[JobId(partly.id)] > 0
    return s3.calls


def _message(body: str) -> dict[str, object]:
    return {"MessageId": "m-1", "ReceiptHandle": "not-received", "Body": body}


def _received(count: int) -> dict[str, str]:
    return {"ApproximateReceiveCount": str(count), "SentTimestamp": "0"}


def _encoded(key: dict[str, str]) -> dict[str, dict[str, str]]:
    return {name: {"S": value} for name, value in key.items()}


@pytest.fixture(scope="module")
def touched() -> Iterator[tuple[set[tuple[str, str, str, str]], Pipeline]]:
    try:
        import moto.server  # noqa: F401  # the emulator's server
    except ImportError as error:
        unavailable("moto's server", error)
    meter = Meter()
    seen: list[Pipeline] = []
    by_key: list[tuple[str, str]] = []

    def then(pipeline: Pipeline) -> None:
        seen.append(pipeline)
        by_key.extend(the_other_functions(pipeline))

    ran = cost_pipeline.run(JobSpec(60, 20, 20, 4, 120.0), meter, then)
    assert (ran.status, ran.webhook_received) == ("succeeded", True)
    metered = {c for c in meter.touched if c[2] in BY_KEY}
    assert metered == {("job objects", "s3", operation, "") for operation in BY_KEY}
    calls = (meter.touched - metered) | {("job objects", "s3", op, key) for op, key in by_key}
    yield calls, seen[0]


def needed(call: tuple[str, str, str, str], pipeline: Pipeline) -> tuple[str, str, str] | None:
    """(function, IAM action, resource as the table writes it) of one recorded request; None
    for the benchmark's own set-up."""
    step, service, operation, target = call
    queues = {
        pipeline.settings.chunk_queue_url: "ChunkQueue",
        pipeline.settings.dead_letter_queue_url: "ChunkDeadLetterQueue",
        pipeline.settings.notify_queue_url: "NotifyQueue",
    }
    function = FUNCTION_OF_PHASE.get(step)
    if step == cost_pipeline.SQS_SOURCE:
        function = FUNCTION_OF_QUEUE[queues[target]]
    if function is None:
        return None
    action = ACTION.get(operation, operation)
    if service == "dynamodbstreams":
        return function, f"dynamodb:{action}", "Table.StreamArn"
    if service == "dynamodb":
        resource = f"${{Table.Arn}}/index/{target}" if target else "Table.Arn"
        return function, f"dynamodb:{action}", resource
    if service == "sqs":
        return function, f"sqs:{action}", f"{queues[target]}.Arn"
    if service == "s3" and action == "ListBucket":
        # On the bucket itself; the role's condition (s3:prefix) allows LISTABLE prefixes only.
        allowed = any(fnmatch.fnmatchcase(target, prefix) for prefix in LISTABLE)
        return function, "s3:ListBucket", "bucket" if allowed else f"bucket?prefix={target}"
    if service == "s3":
        return function, f"s3:{action}", f"bucket/{target}"
    return function, f"{service}:{action}", target


def allows(function: str, action: str, resource: str) -> bool:
    return any(
        granted.split(" ")[0] == action and fnmatch.fnmatchcase(resource, granted.split(" ")[1])
        for granted in ALLOWED[function]
    )


def test_every_request_each_function_makes_is_allowed_by_its_role(
    touched: tuple[set[tuple[str, str, str, str]], Pipeline],
) -> None:
    calls, pipeline = touched
    made = {n for call in calls if (n := needed(call, pipeline)) is not None}
    refused = sorted(n for n in made if not allows(*n))
    assert not refused, "\n".join(" ".join(n) for n in refused)


def test_every_function_was_exercised(
    touched: tuple[set[tuple[str, str, str, str]], Pipeline],
) -> None:
    """The check above saw each function's work, so a missing permission cannot hide."""
    calls, pipeline = touched
    functions = {n[0] for call in calls if (n := needed(call, pipeline)) is not None}
    assert functions == set(ALLOWED)
