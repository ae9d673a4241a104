"""Every Lambda entry point as Lambda runs it: configured from the environment only
(FANOUT_BACKEND=aws, the resources' names, AWS_ENDPOINT_URL pointing at the moto server), fed
events made from what moto actually holds (messages received from its queues, records read from
its stream, an object put in its bucket)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mangum import Mangum

from fanout.models import JobId, JobStatus, TenantId
from fanout.service import Fanout
from fanout.settings import Settings
from fanout.workers import lambda_handlers
from tests.aws import moto
from tests.aws.lambda_events import acknowledge, s3_event, sqs_event, stream_event
from tests.aws.test_lambda_handlers import (
    API_DOMAIN,
    FUNCTION_URL_DOMAIN,
    Context,
    body_of,
    http_event,
    invoke,
)
from tests.contract.support import BackendUnavailable, unavailable
from tests.e2e.harness import Receiver, verified
from tests.test_infra import expand, passes, sam_template, stream_filters
from tests.waiting import wait_until

TENANT = TenantId("default")


@dataclass
class Lambda:
    """The deployment the handlers see: its settings (as the environment gives them) and raw
    clients to look at the resources with."""

    settings: Settings
    clients: Any

    @property
    def service(self) -> Fanout:
        return lambda_handlers.service()

    def queue(self, name: str) -> str:
        url = getattr(self.settings, f"{name}_url")
        assert isinstance(url, str)
        return url

    def depth(self, name: str) -> int:
        attributes = self.clients.sqs.get_queue_attributes(
            QueueUrl=self.queue(name),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())


@pytest.fixture
def deployment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Lambda]:
    try:
        aws, clients = moto.fresh_settings(settings)
    except BackendUnavailable as error:
        unavailable("the aws backend", error)
    environment = {
        "AWS_ENDPOINT_URL": moto.endpoint(),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": moto.REGION,
        "FANOUT_BACKEND": "aws",
        "FANOUT_DATA_DIR": str(tmp_path / "unused"),
        "FANOUT_TABLE": aws.table,
        "FANOUT_BUCKET": aws.bucket or "",
        "FANOUT_CHUNK_QUEUE_URL": aws.chunk_queue_url or "",
        "FANOUT_DEAD_LETTER_QUEUE_URL": aws.dead_letter_queue_url or "",
        "FANOUT_NOTIFY_QUEUE_URL": aws.notify_queue_url or "",
        "FANOUT_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
        "FANOUT_RECEIVE_WAIT_SECONDS": "0",
        "FANOUT_STALE_AFTER": "0",  # the reconciler may re-release any idle job at once
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    lambda_handlers.service.cache_clear()
    lambda_handlers._s3.cache_clear()
    yield Lambda(Settings(), clients)
    lambda_handlers.service.cache_clear()
    lambda_handlers._s3.cache_clear()


@pytest.fixture
def api(deployment: Lambda) -> Iterator[Mangum]:
    """The API function's handler, built from the environment as its module builds it."""
    loop = asyncio.new_event_loop()  # Mangum sets one and never closes it
    asyncio.set_event_loop(loop)
    from fanout.api.lambda_handler import make_handler

    # Keyless, as the other tests here are: the API then serves only loopback names and those
    # listed (DNS rebinding), so the events' API Gateway and Function URL names are listed.
    yield make_handler(Settings(allowed_hosts=[API_DOMAIN, FUNCTION_URL_DOMAIN]))
    asyncio.set_event_loop(None)
    loop.close()


def run_chunks(deployment: Lambda) -> None:
    """The chunk worker function on every chunk message until the queue is empty."""
    while (event := sqs_event(deployment.clients.sqs, deployment.queue("chunk_queue")))["Records"]:
        assert lambda_handlers.chunk_worker(event, Context()) == {"batchItemFailures": []}


@pytest.mark.parametrize("function_url", [False, True], ids=["http-api-v2", "function-url"])
def test_the_api_function_stores_a_job_in_dynamodb_and_sends_its_chunks_to_sqs(
    deployment: Lambda, api: Mangum, function_url: bool
) -> None:
    body = {"task": "echo", "items": [1, 2, 3], "chunk_size": 1}
    created = invoke(api, http_event("POST", "/jobs", body, function_url=function_url))
    assert created["statusCode"] == 202, created
    job_id = body_of(created)["id"]

    read = invoke(api, http_event("GET", f"/jobs/{job_id}", function_url=function_url))
    assert body_of(read)["counts"]["total"] == 3
    assert deployment.service.get(TENANT, JobId(job_id)).total == 3  # in the table
    assert deployment.depth("chunk_queue") == 3


def test_the_chunk_worker_reports_only_the_broken_message_of_a_batch_as_failed(
    deployment: Lambda,
) -> None:
    sqs = deployment.clients.sqs
    job, _ = deployment.service.submit(TENANT, request([1, 2, 3, 4], chunk_size=2))
    sqs.send_message(QueueUrl=deployment.queue("chunk_queue"), MessageBody="not a chunk")
    event = sqs_event(sqs, deployment.queue("chunk_queue"))
    assert len(event["Records"]) == 3
    [broken] = [r["messageId"] for r in event["Records"] if r["body"] == "not a chunk"]

    response = lambda_handlers.chunk_worker(event, Context())

    assert response == {"batchItemFailures": [{"itemIdentifier": broken}]}
    recorded = deployment.service.backend.jobs.result_blocks(job.id, 0)
    assert [first for first, _ in recorded] == [0, 2]
    # The chunks' messages are deleted; the broken one waits for its visibility timeout.
    assert deployment.depth("chunk_queue") == 1


def test_on_lambda_the_chunk_worker_leaves_deleting_its_messages_to_the_event_source(
    deployment: Lambda, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda's SQS event source deletes every message its function did not report failed; a
    DeleteMessage from the function too would be a second billed request per chunk."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fanout-chunk-worker")
    lambda_handlers.service.cache_clear()
    sqs = deployment.clients.sqs
    job, _ = deployment.service.submit(TENANT, request([1, 2, 3, 4], chunk_size=2))
    deletes: list[str] = []
    deployment.service.backend.queue.client.meta.events.register(  # type: ignore[attr-defined]  # SqsChunkQueue's
        "before-call.sqs.*", lambda model, **_: deletes.append(model.name)
    )
    event = sqs_event(sqs, deployment.queue("chunk_queue"))

    response = lambda_handlers.chunk_worker(event, Context())

    assert response == {"batchItemFailures": []}
    assert [call for call in deletes if call.startswith("DeleteMessage")] == []
    assert [first for first, _ in deployment.service.backend.jobs.result_blocks(job.id, 0)] == [
        0,
        2,
    ]
    acknowledge(sqs, deployment.queue("chunk_queue"), event, response)  # as the event source does
    assert deployment.depth("chunk_queue") == 0


def test_the_aggregator_counts_a_stream_batch_once_though_lambda_delivers_it_twice(
    deployment: Lambda,
) -> None:
    sqs, dynamodb, streams = (
        deployment.clients.sqs,
        deployment.clients.dynamodb,
        deployment.clients.streams,
    )
    job, _ = deployment.service.submit(TENANT, request(list(range(6)), chunk_size=2, hook=True))
    run_chunks(deployment)
    batch = stream_event(dynamodb, streams, deployment.settings.table, {})
    inserts = [r for r in batch["Records"] if r["eventName"] == "INSERT"]
    assert inserts and all("eventSourceARN" in r for r in inserts)

    lambda_handlers.aggregator(batch, Context())
    lambda_handlers.aggregator(batch, Context())  # a retried batch

    done = deployment.service.get(TENANT, job.id)
    assert (done.status, done.succeeded, done.failed) == (JobStatus.SUCCEEDED, 6, 0)
    bucket = deployment.settings.bucket
    assert done.output == f"s3://{bucket}/outputs/{job.id}.jsonl"
    written = deployment.clients.s3.get_object(Bucket=bucket, Key=f"outputs/{job.id}.jsonl")
    lines = written["Body"].read().decode().splitlines()
    assert [json.loads(line)["output"] for line in lines] == list(range(6))
    notices = sqs_event(sqs, deployment.queue("notify_queue"))["Records"]
    assert [json.loads(n["body"]) for n in notices] == [
        {"event_id": f"evt_{job.id}", "job_id": job.id}
    ]


def test_the_notifier_delivers_the_webhook_its_notice_names_once(
    deployment: Lambda, receiver: Receiver
) -> None:
    service = deployment.service
    job, secret = service.submit(TENANT, request([1, 2], chunk_size=2, hook=receiver.url))
    run_chunks(deployment)
    lambda_handlers.aggregator(
        stream_event(
            deployment.clients.dynamodb, deployment.clients.streams, deployment.settings.table, {}
        ),
        Context(),
    )
    notices = sqs_event(deployment.clients.sqs, deployment.queue("notify_queue"))
    assert len(notices["Records"]) == 1

    assert lambda_handlers.notifier(notices, Context()) == {"batchItemFailures": []}
    response = lambda_handlers.notifier(notices, Context())  # delivered again
    acknowledge(deployment.clients.sqs, deployment.queue("notify_queue"), notices, response)

    [delivered] = receiver.deliveries()
    assert secret is not None
    assert verified(delivered, secret)["data"]["id"] == job.id
    assert deployment.depth("notify_queue") == 0
    event = service.get(TENANT, job.id).event
    assert event is not None and event.attempts == 1


def test_a_failed_webhook_is_announced_again_with_a_delay_and_delivered_then(
    deployment: Lambda, receiver: Receiver
) -> None:
    receiver.answers.append(503)
    service = deployment.service
    job, _ = service.submit(TENANT, request([1], chunk_size=1, hook=receiver.url))
    run_chunks(deployment)
    table, clients = deployment.settings.table, deployment.clients
    lambda_handlers.aggregator(
        stream_event(clients.dynamodb, clients.streams, table, {}), Context()
    )

    first = sqs_event(clients.sqs, deployment.queue("notify_queue"))
    response = lambda_handlers.notifier(first, Context())
    assert response == {"batchItemFailures": []}
    acknowledge(clients.sqs, deployment.queue("notify_queue"), first, response)
    # The retry's notice comes once its delay has passed (backoff here is under a second).
    retry = wait_until(
        lambda: sqs_event(clients.sqs, deployment.queue("notify_queue"))["Records"],
        10,
        "the retry's notice",
        every=0.1,
    )
    assert lambda_handlers.notifier({"Records": retry}, Context()) == {"batchItemFailures": []}
    assert [r.headers["webhook-id"] for r in receiver.deliveries()] == [f"evt_{job.id}"] * 2
    event = service.get(TENANT, job.id).event
    assert event is not None
    assert [a.status_code for a in event.history] == [503, 204]


def test_the_dead_letter_function_splits_a_chunk_that_exhausted_its_receives(
    deployment: Lambda,
) -> None:
    sqs = deployment.clients.sqs
    job, _ = deployment.service.submit(TENANT, request([1, 2, 3, 4], chunk_size=4))
    chunks = deployment.queue("chunk_queue")
    for _ in range(deployment.settings.max_receive_count):  # the worker dies each time
        assert len(sqs.receive_message(QueueUrl=chunks, VisibilityTimeout=0)["Messages"]) == 1
    assert sqs.receive_message(QueueUrl=chunks).get("Messages", []) == []  # redriven

    dead = sqs_event(sqs, deployment.queue("dead_letter_queue"))
    assert len(dead["Records"]) == 1
    assert lambda_handlers.dead_letter(dead, Context()) == {"batchItemFailures": []}

    assert deployment.depth("dead_letter_queue") == 0
    halves = deployment.service.backend.queue.receive(10, 60)
    assert sorted((d.chunk.start, d.chunk.end) for d in halves) == [(0, 2), (2, 4)]
    assert not deployment.service.get(TENANT, job.id).status.terminal


def test_the_scheduled_reconciler_re_releases_chunks_whose_messages_were_lost(
    deployment: Lambda,
) -> None:
    deployment.service.submit(TENANT, request([1, 2], chunk_size=1))
    lost = deployment.service.backend.queue.receive(10, 60)
    for delivery in lost:
        deployment.service.backend.queue.delete(delivery.receipt)
    scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}

    lambda_handlers.reconciler(scheduled, Context())

    again = deployment.service.backend.queue.receive(10, 60)
    assert {d.chunk for d in again} == {d.chunk for d in lost}
    assert len(lost) == 2


def test_the_s3_ingest_function_makes_a_job_of_a_file_put_in_the_bucket(
    deployment: Lambda,
) -> None:
    s3, bucket = deployment.clients.s3, deployment.settings.bucket
    assert bucket is not None
    s3.put_object(Bucket=bucket, Key="jobs/echo/my items.jsonl", Body=b'"a"\n"b"\n"c"\n')
    event = s3_event(s3, bucket, "jobs/echo/my items.jsonl")

    [job_id] = lambda_handlers.s3_ingest(event, Context())
    assert lambda_handlers.s3_ingest(event, Context()) == [job_id]  # S3 delivered it twice

    job = deployment.service.get(TENANT, JobId(job_id))
    assert (job.task, job.total) == ("echo", 3)
    assert len(deployment.service.list(TENANT, None, None, 10).items) == 1


def request(items: list[Any], chunk_size: int, hook: str | bool = False) -> Any:
    from fanout.service import JobRequest

    url = hook if isinstance(hook, str) else ("http://127.0.0.1:9/hook" if hook else None)
    return JobRequest(task="echo", items=items, params={}, webhook_url=url, chunk_size=chunk_size)


def test_a_job_goes_from_the_api_through_every_function_to_one_signed_webhook_with_exact_counts(
    deployment: Lambda, api: Mangum, receiver: Receiver
) -> None:
    clients, table = deployment.clients, deployment.settings.table
    chunks, notify = deployment.queue("chunk_queue"), deployment.queue("notify_queue")
    body = {
        "task": "echo",
        "items": list(range(24)),
        "chunk_size": 3,
        "max_concurrency": 3,
        "webhook": {"url": receiver.url},
    }
    created = invoke(api, http_event("POST", "/jobs", body))
    assert created["statusCode"] == 202, created
    job_id, secret = body_of(created)["id"], body_of(created)["webhook"]["secret"]

    positions: dict[str, str] = {}
    duplicated = retried = 0
    notified: list[Any] = []
    while not notified:
        event = sqs_event(clients.sqs, chunks)
        if event["Records"] and duplicated < 2:  # SQS delivers a message a second time
            again = event["Records"][0]["body"]
            clients.sqs.send_message(QueueUrl=chunks, MessageBody=again)
            duplicated += 1
        if event["Records"]:
            worked = lambda_handlers.chunk_worker(event, Context())
            assert worked == {"batchItemFailures": []}
            acknowledge(clients.sqs, chunks, event, worked)
        batch = stream_event(clients.dynamodb, clients.streams, table, positions)
        if batch["Records"]:
            lambda_handlers.aggregator(batch, Context())
            if retried < 2:  # Lambda retries a batch whole
                lambda_handlers.aggregator(batch, Context())
                retried += 1
        notices = sqs_event(clients.sqs, notify)
        if notices["Records"]:
            answered = lambda_handlers.notifier(notices, Context())
            acknowledge(clients.sqs, notify, notices, answered)
            notified.append(answered)
        assert event["Records"] or batch["Records"] or notices["Records"], "the pipeline stalled"

    assert (duplicated, retried) == (2, 2)
    [delivered] = receiver.deliveries()
    payload = verified(delivered, secret)  # standardwebhooks checks the signature
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["counts"] == {
        "total": 24,
        "succeeded": 24,
        "failed": 0,
        "pending": 0,
        "running": 0,
        "cancelled": 0,
    }
    job = body_of(invoke(api, http_event("GET", f"/jobs/{job_id}")))
    assert job["counts"] == payload["data"]["counts"]
    assert job["webhook"]["status"] == "delivered"
    assert [a["status_code"] for a in job["webhook"]["attempts"]] == [204]
    assert (
        job["output"]
        == payload["data"]["output"]
        == f"s3://{deployment.settings.bucket}/outputs/{job_id}.jsonl"
    )
    page = http_event("GET", f"/jobs/{job_id}/results")
    page["rawQueryString"] = "limit=100"
    results = body_of(invoke(api, page))
    assert [r["output"] for r in results["items"]] == list(range(24))
    assert (deployment.depth("chunk_queue"), deployment.depth("notify_queue")) == (0, 0)


def test_the_job_objects_function_deletes_the_objects_of_the_job_whose_item_was_removed(
    deployment: Lambda,
) -> None:
    """The stream's records, passed through the template's own filter as the event source
    does: only the removal of job A's item reaches the function, which deletes A's input
    object and leaves B's."""
    service, bucket = deployment.service, deployment.settings.bucket
    a, _ = service.submit(TENANT, request([1, 2, 3, 4], chunk_size=2))
    b, _ = service.submit(TENANT, request([1, 2, 3, 4], chunk_size=2))
    s3, dynamodb = deployment.clients.s3, deployment.clients.dynamodb
    table = deployment.settings.table
    dynamodb.delete_item(TableName=table, Key={"pk": {"S": f"JOB#{a.id}"}, "sk": {"S": "JOB"}})
    every = stream_event(dynamodb, deployment.clients.streams, table, {})
    filters = stream_filters(expand(sam_template()), "JobObjectsFunction")
    event = {"Records": [r for r in every["Records"] if passes(filters, r)]}
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]] == [f"JOB#{a.id}"]

    lambda_handlers.job_objects(event, Context())

    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert keys == {f"inputs/{b.id}.json"}
