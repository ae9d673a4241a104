"""The Lambda entry points, fed the events Lambda sends (API Gateway HTTP API v2, Function URL,
SQS batch, DynamoDB stream batch, S3 notification), on the embedded backend: what is tested here
is the translation of each event into service calls and back. The parts outside the service are
real: input files are objects in a bucket on the moto server, read back through boto3, and their
events the notifications S3 sent for them; webhooks go to a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mangum import Mangum
from mangum.types import LambdaCognitoIdentity, LambdaMobileClientContext

from fanout.models import Delivery, DeliveryStatus, Job, JobId, JobStatus, TenantId
from fanout.service import Fanout, JobRequest
from fanout.settings import Settings
from fanout.workers import lambda_handlers
from tests.aws import moto
from tests.aws.lambda_events import s3_notification
from tests.contract.support import BackendUnavailable, unavailable
from tests.e2e.harness import Received, Receiver, verified

TENANT = TenantId("default")
Event = dict[str, Any]
MakeHandler = Callable[[Settings], Mangum]


# -- event shapes, as in the Lambda developer guide's examples ----------------------------------

API_DOMAIN = "abcdefghij.execute-api.us-east-1.amazonaws.com"
FUNCTION_URL_DOMAIN = "abcdefghij.lambda-url.us-east-1.on.aws"


def http_event(method: str, path: str, body: Any = None, *, function_url: bool = False) -> Event:
    """An HTTP API (payload format 2.0) event; a Function URL sends the same format."""
    domain = FUNCTION_URL_DOMAIN if function_url else API_DOMAIN
    headers = {"host": domain, "user-agent": "curl/8.5.0", "accept": "*/*"}
    encoded = None
    if body is not None:
        encoded = json.dumps(body)
        headers["content-type"] = "application/json"
        headers["content-length"] = str(len(encoded))
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012" if not function_url else "anonymous",
            "apiId": "abcdefghij",
            "domainName": domain,
            "domainPrefix": "abcdefghij",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": "curl/8.5.0",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "27/Nov/2026:03:00:00 +0000",
            "timeEpoch": 1795748400000,
        },
        "body": encoded,
        "isBase64Encoded": False,
    }


def sqs_record(body: str, receipt: str, receive_count: int = 1) -> Event:
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": receipt,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1795748400000",
            "SenderId": "AROAEXAMPLE:fanout",
            "ApproximateFirstReceiveTimestamp": "1795748400001",
        },
        "messageAttributes": {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:fanout-chunks",
        "awsRegion": "us-east-1",
    }


def chunk_message(delivery: Delivery) -> Event:
    """The record SQS hands Lambda for a chunk message, as SqsChunkQueue writes its body."""
    chunk = delivery.chunk
    body = json.dumps({"job_id": chunk.job_id, "start": chunk.start, "end": chunk.end})
    return sqs_record(body, delivery.receipt, delivery.receive_count)


# -- helpers ------------------------------------------------------------------------------------


def submit(service: Fanout, items: list[Any], chunk_size: int = 2) -> Job:
    job, _ = service.submit(
        TENANT, JobRequest(task="echo", items=items, params={}, chunk_size=chunk_size)
    )
    return job


def received(service: Fanout) -> list[Delivery]:
    return service.backend.queue.receive(10, service.settings.visibility_timeout)


def run_to_the_end(service: Fanout, job: Job) -> list[bytes]:
    """Run every chunk message through the chunk worker; the job's result lines."""
    for _ in range(job.total + 1):  # a chunk per item at most, then the empty queue
        deliveries = received(service)
        if not deliveries:
            break
        lambda_handlers.handle_chunks(service, {"Records": [chunk_message(d) for d in deliveries]})
    done = service.get(job.tenant, job.id)
    assert done.status is JobStatus.SUCCEEDED, done
    return list(service.result_lines(done, 0, None))


@dataclass
class Context:
    """Lambda's context object, as much of it as Mangum's type names."""

    function_name: str = "fanout-api"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:fanout-api"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name: str = "/aws/lambda/fanout-api"
    log_stream_name: str = "2026/11/27/[$LATEST]abcdef"
    identity: LambdaCognitoIdentity | None = None
    client_context: LambdaMobileClientContext | None = None

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def invoke(handler: Mangum, event: Event) -> Event:
    response: Event = handler(event, Context())
    return response


def body_of(response: Event) -> Any:
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body)


@pytest.fixture
def make_handler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MakeHandler]:
    """`api.lambda_handler.make_handler`, with the event loop Mangum runs on closed afterwards
    (Mangum sets one and never closes it; left open, it warns when collected in a later test)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # The module builds its own handler at import from the environment: keep its SQLite file
    # out of the working directory.
    monkeypatch.setenv("FANOUT_DATA_DIR", str(tmp_path / "import"))
    from fanout.api import lambda_handler

    yield lambda_handler.make_handler
    asyncio.set_event_loop(None)
    loop.close()


@pytest.fixture
def api(settings: Settings, make_handler: MakeHandler) -> Mangum:
    # Keyless: the API then serves only loopback names and those listed (DNS rebinding).
    listed = [*settings.allowed_hosts, API_DOMAIN, FUNCTION_URL_DOMAIN]
    return make_handler(settings.model_copy(update={"allowed_hosts": listed}))


# -- the API ------------------------------------------------------------------------------------


@pytest.mark.parametrize("function_url", [False, True], ids=["http-api-v2", "function-url"])
def test_an_http_event_submits_a_job_and_reads_it_back(api: Mangum, function_url: bool) -> None:
    created = invoke(
        api,
        http_event("POST", "/jobs", {"task": "echo", "items": [1, 2]}, function_url=function_url),
    )
    assert created["statusCode"] == 202, created
    job = body_of(created)
    assert created["headers"]["location"] == f"/jobs/{job['id']}"

    read = invoke(api, http_event("GET", f"/jobs/{job['id']}", function_url=function_url))
    assert read["statusCode"] == 200
    assert body_of(read)["id"] == job["id"]
    assert body_of(read)["counts"]["total"] == 2


def test_an_error_comes_back_as_problem_json_text(api: Mangum) -> None:
    response = invoke(api, http_event("POST", "/jobs", {"task": "no-such-task", "items": []}))
    assert response["statusCode"] == 422
    assert response["headers"]["content-type"].startswith("application/problem+json")
    assert response["isBase64Encoded"] is False
    assert body_of(response)["status"] == 422


def test_the_lambda_handler_refuses_a_caller_without_a_configured_key(
    settings: Settings, make_handler: MakeHandler
) -> None:
    guarded = make_handler(settings.model_copy(update={"api_keys": ["k1:tenant-a"]}))
    assert invoke(guarded, http_event("GET", "/jobs"))["statusCode"] == 401
    event = http_event("GET", "/jobs")
    event["headers"]["authorization"] = "Bearer k1"
    assert invoke(guarded, event)["statusCode"] == 200


# -- SQS: chunks and dead letters -----------------------------------------------------------------


def test_a_batch_of_chunk_messages_runs_every_chunk_and_reports_no_failures(
    service: Fanout,
) -> None:
    job = submit(service, [1, 2, 3, 4, 5], chunk_size=2)
    while deliveries := received(service):
        event = {"Records": [chunk_message(d) for d in deliveries]}
        assert lambda_handlers.handle_chunks(service, event) == {"batchItemFailures": []}
    done = service.get(TENANT, job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert (done.succeeded, done.failed) == (5, 0)


def test_only_the_records_that_fail_are_reported_for_redelivery(service: Fanout) -> None:
    job = submit(service, [1, 2, 3, 4], chunk_size=2)
    good = [chunk_message(d) for d in received(service)]
    bad = sqs_record("not json", "receipt-of-a-broken-message")
    response = lambda_handlers.handle_chunks(service, {"Records": [good[0], bad, good[1]]})
    assert response == {"batchItemFailures": [{"itemIdentifier": bad["messageId"]}]}
    assert service.get(TENANT, job.id).succeeded == 4


def test_a_record_becomes_a_delivery_with_its_receipt_and_receive_count(
    service: Fanout,
) -> None:
    job = submit(service, [1, 2], chunk_size=2)
    [sent] = received(service)
    record = chunk_message(Delivery(sent.chunk, "r-1", 3))
    assert lambda_handlers.delivery(record) == Delivery(sent.chunk, "r-1", 3)
    assert sent.chunk.job_id == job.id


def test_a_dead_lettered_chunk_is_split_in_two(service: Fanout) -> None:
    job = submit(service, [1, 2, 3, 4], chunk_size=4)
    [chunk] = received(service)
    dead = {"Records": [chunk_message(chunk)]}
    assert lambda_handlers.handle_dead_letters(service, dead, receipt_prefix="") == {
        "batchItemFailures": []
    }
    halves = sorted((d.chunk.start, d.chunk.end) for d in received(service))
    assert halves == [(0, 2), (2, 4)]
    assert not service.get(TENANT, job.id).status.terminal


def test_a_dead_lettered_single_item_fails_that_item_only(service: Fanout) -> None:
    job = submit(service, [7], chunk_size=1)
    [chunk] = received(service)
    lambda_handlers.handle_dead_letters(
        service, {"Records": [chunk_message(chunk)]}, receipt_prefix=""
    )
    done = service.get(TENANT, job.id)
    assert (done.status, done.failed) == (JobStatus.FAILED, 1)


# -- SQS: webhook notifications -------------------------------------------------------------------


def finished_job_with_webhook(service: Fanout, url: str) -> tuple[Job, str]:
    """A job of one item, run by the chunk worker, whose webhook to `url` is now due; and the
    secret its webhooks are signed with."""
    request = JobRequest(task="echo", items=[1], params={}, webhook_url=url, chunk_size=1)
    job, secret = service.submit(TENANT, request)
    lambda_handlers.handle_chunks(service, {"Records": [chunk_message(received(service)[0])]})
    assert service.get(TENANT, job.id).status is JobStatus.SUCCEEDED
    assert secret is not None
    return job, secret


def notice(job: Job) -> Event:
    """The record SQS hands the notifier for a job's completion event."""
    return sqs_record(json.dumps({"event_id": f"evt_{job.id}", "job_id": job.id}), "n-1")


def the_completion(received: Received, job: Job, secret: str) -> None:
    """`received` is the job's completion webhook: signed with its secret, under the event's id,
    reporting its end and counts."""
    payload = verified(received, secret)
    assert (received.path, received.headers["webhook-id"]) == ("/hook", f"evt_{job.id}")
    assert payload["data"]["id"] == job.id
    assert (payload["data"]["status"], payload["data"]["counts"]["succeeded"]) == ("succeeded", 1)


def test_a_notice_delivers_its_webhook_once_however_often_it_comes(
    service: Fanout, receiver: Receiver
) -> None:
    job, secret = finished_job_with_webhook(service, receiver.url)
    bell = {"Records": [notice(job)]}
    once = lambda_handlers.handle_notifications(service, bell)
    again = lambda_handlers.handle_notifications(service, bell)
    assert once == again == {"batchItemFailures": []}
    [delivered] = receiver.deliveries()
    the_completion(delivered, job, secret)
    event = service.get(TENANT, job.id).event
    assert event is not None
    assert (event.status, event.attempts) == (DeliveryStatus.DELIVERED, 1)


def test_a_notice_whose_webhook_fails_records_the_attempt_and_leaves_the_event_pending(
    service: Fanout, receiver: Receiver
) -> None:
    job, secret = finished_job_with_webhook(service, receiver.url)
    receiver.answers.append(503)
    response = lambda_handlers.handle_notifications(service, {"Records": [notice(job)]})
    assert response == {"batchItemFailures": []}
    [refused] = receiver.deliveries()
    the_completion(refused, job, secret)
    event = service.get(TENANT, job.id).event
    assert event is not None
    assert (event.status, event.attempts) == (DeliveryStatus.PENDING, 1)


def test_a_message_that_is_not_a_notice_is_reported_for_redelivery(
    service: Fanout, receiver: Receiver
) -> None:
    job, _ = finished_job_with_webhook(service, receiver.url)
    record = sqs_record('{"job_id": "x"}', "n-1")
    response = lambda_handlers.handle_notifications(service, {"Records": [record]})
    assert response == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    assert receiver.deliveries() == []
    event = service.get(TENANT, job.id).event
    assert event is not None and event.attempts == 0


def test_the_schedule_delivers_webhooks_that_came_due(service: Fanout, receiver: Receiver) -> None:
    job, secret = finished_job_with_webhook(service, receiver.url)
    scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    assert lambda_handlers.handle_notifications(service, scheduled) is None
    [delivered] = receiver.deliveries()
    the_completion(delivered, job, secret)
    assert lambda_handlers.handle_notifications(service, scheduled) is None
    assert len(receiver.deliveries()) == 1, "the sweep delivered a delivered webhook again"


# -- S3 input files -------------------------------------------------------------------------------


@dataclass
class Inbox:
    """A bucket on the moto server that notifies a queue of each object created under `jobs/`,
    as the template's bucket notifies the ingest function (whose event is the same JSON)."""

    s3: Any
    sqs: Any
    bucket: str
    queue_url: str

    def put(self, key: str, body: bytes, **metadata: str) -> Event:
        """Put an object; the ObjectCreated notification S3 sent for it."""
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata=metadata)
        return s3_notification(self.sqs, self.queue_url)


@pytest.fixture
def inbox() -> Inbox:
    try:
        s3, sqs = moto.client("s3"), moto.client("sqs")
    except BackendUnavailable as error:
        unavailable("the moto server", error)
    name = f"inbox-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    rule = {"Key": {"FilterRules": [{"Name": "prefix", "Value": "jobs/"}]}}
    notify = {"QueueArn": arn["Attributes"]["QueueArn"], "Events": ["s3:ObjectCreated:*"]}
    s3.put_bucket_notification_configuration(
        Bucket=name,
        NotificationConfiguration={"QueueConfigurations": [{**notify, "Filter": rule}]},
    )
    return Inbox(s3, sqs, name, queue_url)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("items.json", b'["a", "b", "c"]'),
        ("items.jsonl", b'"a"\n\n"b"\n"c"\n'),
        ("items.ndjson", b'"a"\n"b"\n"c"'),
    ],
)
def test_an_input_file_under_jobs_task_becomes_a_job_of_its_items(
    service: Fanout, inbox: Inbox, name: str, content: bytes
) -> None:
    event = inbox.put(f"jobs/echo/{name}", content)
    [job_id] = lambda_handlers.handle_input_files(service, event, inbox.s3)
    job = service.get(TENANT, JobId(job_id))
    assert (job.task, job.total) == ("echo", 3)
    assert [json.loads(line)["output"] for line in run_to_the_end(service, job)] == ["a", "b", "c"]


def test_a_csv_file_gives_one_object_per_row_and_metadata_sets_task_tenant_and_options(
    service: Fanout, inbox: Inbox
) -> None:
    options = json.dumps({"params": {"salt": "s"}, "max_concurrency": 3, "chunk_size": 1})
    event = inbox.put(
        "jobs/uploads/my file.csv",
        b"\xef\xbb\xbfname,size\nx,1\ny,2\n",
        **{"fanout-task": "echo", "fanout-tenant": "tenant-b", "fanout-options": options},
    )
    # S3 URL-encodes the key, a space as "+": the ingest decodes it to find the object.
    assert event["Records"][0]["s3"]["object"]["key"].endswith("my+file.csv")
    [job_id] = lambda_handlers.handle_input_files(service, event, inbox.s3)
    job = service.get(TenantId("tenant-b"), JobId(job_id))
    assert (job.task, job.total, job.params) == ("echo", 2, {"salt": "s"})
    assert (job.options.max_concurrency, job.options.chunk_size) == (3, 1)
    lines = run_to_the_end(service, job)
    assert [json.loads(line)["output"] for line in lines] == [
        {"name": "x", "size": "1"},
        {"name": "y", "size": "2"},
    ]


def test_the_same_s3_event_delivered_twice_creates_one_job_and_a_later_put_another(
    service: Fanout, inbox: Inbox
) -> None:
    event = inbox.put("jobs/echo/a.json", b"[1]")
    first = lambda_handlers.handle_input_files(service, event, inbox.s3)
    again = lambda_handlers.handle_input_files(service, event, inbox.s3)
    assert first == again
    assert len(service.list(TENANT, None, None, 100).items) == 1
    later_put = inbox.put("jobs/echo/a.json", b"[1, 2]")
    [later] = lambda_handlers.handle_input_files(service, later_put, inbox.s3)
    assert later not in first
    assert service.get(TENANT, JobId(later)).total == 2
    assert len(service.list(TENANT, None, None, 100).items) == 2


@pytest.mark.parametrize(
    ("key", "content", "metadata"),
    [
        ("jobs/echo/a.txt", b"[1]", {}),
        ("jobs/a.json", b"[1]", {}),
        ("jobs/echo/a.json", b'{"not": "a list"}', {}),
        ("jobs/echo/a.json", b"[1", {}),
        ("jobs/echo/a.jsonl", b"1\n2\n" * 2000 + b"{three\n4\n", {}),
        ("jobs/no-such-task/a.json", b"[1]", {}),
        ("jobs/echo/a.json", b"[1]", {"fanout-options": "{"}),
        ("jobs/echo/a.json", b"[1]", {"fanout-options": '{"items": [2]}'}),
        ("jobs/echo/a.json", b"[1]", {"fanout-options": '{"items_url": "s3://b/k.json"}'}),
        ("jobs/echo/a.json", b"[1]", {"fanout-options": '{"webhook": {"url": "http://x"}}'}),
    ],
    ids=[
        "extension",
        "no-task",
        "not-an-array",
        "bad-json",
        "bad-line-part-way",
        "unknown-task",
        "bad-options",
        "items-in-options",
        "items-url-in-options",
        "webhook-without-secret",
    ],
)
def test_a_file_that_cannot_become_a_job_is_skipped_not_retried(
    service: Fanout, inbox: Inbox, key: str, content: bytes, metadata: dict[str, str]
) -> None:
    event = inbox.put(key, content, **metadata)
    assert lambda_handlers.handle_input_files(service, event, inbox.s3) == []
    assert service.list(TENANT, None, None, 100).items == []


# -- schedule and stream --------------------------------------------------------------------------


def test_an_embedded_backend_counts_at_record_time_so_a_stream_batch_is_a_no_op(
    service: Fanout,
) -> None:
    job = submit(service, [1, 2], chunk_size=2)
    [line_1, line_2] = run_to_the_end(service, job)
    counted = service.get(TENANT, job.id)
    assert (counted.succeeded, counted.failed) == (2, 0)
    # What DynamoDB's stream would carry for that chunk's result: counting it again here would
    # make 4 of 2, or finalize the job a second time.
    record = {
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"pk": {"S": f"JOB#{job.id}"}, "sk": {"S": "RESULT#0000000000#0000000002"}}
        },
    }
    lambda_handlers.handle_stream(service, {"Records": [record, record]})
    after = service.get(TENANT, job.id)
    assert (after.status, after.succeeded, after.failed) == (JobStatus.SUCCEEDED, 2, 0)
    assert after.event == counted.event
    assert list(service.result_lines(after, 0, None)) == [line_1, line_2]
