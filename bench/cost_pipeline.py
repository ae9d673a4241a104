"""One job through the whole AWS pipeline on a private moto server, in-process, as Lambda runs it.

Each Lambda function is its handler called on one batch, as Lambda's event sources form them
(`infra/template.yaml`): the API (Mangum, one `POST /jobs`), the chunk worker (SQS batches of
up to 10, `ReportBatchItemFailures`), the aggregator (stream batches of up to 100, filtered to
chunk-result INSERTs as the template's FilterCriteria does) and the notifier (the notify queue's
message, or the schedule's tick when nothing came on the queue). What the event sources
themselves do is done here too, with their own phase: SQS ReceiveMessage and, for the records
a batch did not report as failed, DeleteMessageBatch (billed to the account); DynamoDB Streams
reads (free when a Lambda trigger makes them). Everything runs on one thread, one request at a
time, so moto's non-atomic conditional writes never race (`tests/aws/moto.py` serialises them
for the threaded tests).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mangum.types import LambdaCognitoIdentity, LambdaMobileClientContext

from bench.cost_meter import Meter, phase
from bench.webhook import WebhookReceiver
from fanout import tasks
from fanout.models import JobId, TenantId
from fanout.service import Fanout
from fanout.settings import Settings

REGION = "us-east-1"
SQS_BATCH = 10  # the chunk worker's and notifier's BatchSize in the template
STREAM_BATCH = 100  # the aggregator's BatchSize
# The deployed API has keys (it refuses to start without them); this one's tenant is "default".
API_KEY = "bench"
TENANT_HEADERS = {"content-type": "application/json", "authorization": f"Bearer {API_KEY}"}
API = "api"
WORKER = "chunk worker"
AGGREGATOR = "aggregator"
FINALIZE = "finalize (in aggregator)"
NOTIFIER = "notifier"
SQS_SOURCE = "SQS event source"
STREAM_SOURCE = "stream event source"  # Lambda's stream reads: free
TERMINAL = {"succeeded", "failed", "cancelled"}
TENANT = TenantId("default")
WARM_UP_ITEMS = 1000


@dataclass(frozen=True)
class JobSpec:
    items: int
    chunk_size: int | None
    result_bytes: int
    window: int
    timeout: float
    # First an uncounted job of the same task, so the default chunking sizes the counted one by
    # the task's measured time per item, as it does every job of a task after its first.
    warm_up: bool = True


@dataclass(frozen=True)
class Ran:
    job_id: str
    status: str
    succeeded: int
    chunk_size: int
    seconds: float
    webhook_received: bool
    request_bytes: int
    chunks: int


class PhasedFanout(Fanout):
    """The service, with the requests of finalize told apart from the aggregator's own."""

    def finalize(self, job_id: JobId) -> bool:
        with phase(FINALIZE):
            return super().finalize(job_id)


@contextmanager
def moto_server() -> Iterator[str]:
    """A private emulator (`fanout aws emulator`'s) on a free loopback port; yields its URL."""
    from fanout.backends.aws.emulator import Emulator

    emulator = Emulator()
    try:
        yield emulator.start()
    finally:
        emulator.stop()


def run(spec: JobSpec, meter: Meter, then: Callable[[Pipeline], None] | None = None) -> Ran:
    """Start moto, create the resources, run the job to its webhook, count every request; then
    `then(pipeline)`, if given, while it all still runs."""
    import boto3

    from fanout.backends.aws import Clients
    from fanout.backends.aws.bootstrap import INDEXES, PROJECTIONS, bootstrap
    from fanout.wiring import aws_backend

    with moto_server() as endpoint:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        setup = Clients.create(session, endpoint_url=endpoint)  # bootstrap and checks: uncounted
        counted = Clients.create(session, endpoint_url=endpoint)
        for client in (counted.sqs, counted.s3, counted.streams):
            meter.attach(client)
        indexes = {name: list(keys) for name, keys in INDEXES.items()}
        meter.attach(counted.dynamodb, setup.dynamodb, indexes, PROJECTIONS)
        # moto keeps its state per process, not per server: fresh names for every run.
        name = f"fanout-cost-{uuid.uuid4().hex[:12]}"
        base = Settings(
            backend="aws",
            table=name,
            bucket=name,
            receive_wait_seconds=0,
            webhook_allow_networks=["127.0.0.0/8"],  # type: ignore[list-item]  # parsed by pydantic
            api_keys=[f"{API_KEY}:default"],
            default_max_concurrency=spec.window,
        )
        environment = bootstrap(base, setup)
        settings = base.model_copy(
            update={
                "chunk_queue_url": environment["FANOUT_CHUNK_QUEUE_URL"],
                "dead_letter_queue_url": environment["FANOUT_DEAD_LETTER_QUEUE_URL"],
                "notify_queue_url": environment["FANOUT_NOTIFY_QUEUE_URL"],
            }
        )
        tasks.load(settings.tasks)
        # As on Lambda: the event sources delete the messages the functions handled.
        service = PhasedFanout(aws_backend(settings, counted, event_sources=True), settings)
        receiver = WebhookReceiver()
        receiver.start()
        try:
            pipeline = Pipeline(spec, meter, service, settings, counted, setup, receiver)
            ran = pipeline.run()
            if then is not None:
                then(pipeline)
            return ran
        finally:
            receiver.stop()


class Pipeline:
    def __init__(
        self,
        spec: JobSpec,
        meter: Meter,
        service: Fanout,
        settings: Settings,
        counted: Any,
        setup: Any,
        receiver: WebhookReceiver,
    ) -> None:
        self.spec = spec
        self.meter = meter
        self.service = service
        self.settings = settings
        self.counted = counted
        self.setup = setup
        self.receiver = receiver
        self.job_id = ""  # the counted job's, once submitted
        self.stream = StreamSource(counted.streams, setup.dynamodb, settings.table)

    def run(self) -> Ran:
        began = time.monotonic()
        deadline = began + self.spec.timeout
        if self.spec.warm_up:
            self.warm_up(deadline)
        job_id, request_bytes = self.submit()
        self.job_id = job_id
        self.run_to_end(job_id, deadline)
        self.notify(job_id)
        received = self.receiver.wait(job_id, deadline) is not None
        job = self.status(job_id)
        return Ran(
            job_id=job_id,
            status=job["status"],
            succeeded=int(job["succeeded"]),
            chunk_size=int(json.loads(job["options"])["chunk_size"]),
            seconds=time.monotonic() - began,
            webhook_received=received,
            request_bytes=request_bytes,
            chunks=int(job["chunk_count"]),
        )

    def warm_up(self, deadline: float) -> None:
        """A job of WARM_UP_ITEMS items of the task, with the meter off."""
        from fanout.api.schemas import JobCreate

        self.meter.enabled = False
        try:
            body = {"task": "echo", "items": ["x" * self.spec.result_bytes] * WARM_UP_ITEMS}
            job, _ = self.service.submit(TENANT, JobCreate.model_validate(body).to_request())
            self.run_to_end(job.id, deadline)
        finally:
            self.meter.enabled = True

    def run_to_end(self, job_id: str, deadline: float) -> None:
        while self.status(job_id)["status"] not in TERMINAL:
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not end within {self.spec.timeout} s")
            self.work()
            self.aggregate()

    def submit(self) -> tuple[str, int]:
        """`POST /jobs` through the API's Lambda handler (Mangum over the FastAPI app)."""
        from mangum import Mangum

        from fanout.api.app import create_app

        width = self.spec.result_bytes
        items = [f"{i:0{width}d}"[-width:] for i in range(self.spec.items)]
        body: dict[str, Any] = {
            "task": "echo",
            "items": items,
            "webhook": {"url": self.receiver.url},
            "max_concurrency": self.spec.window,
        }
        if self.spec.chunk_size is not None:
            body["chunk_size"] = self.spec.chunk_size
        encoded = json.dumps(body)
        loop = asyncio.new_event_loop()  # Mangum runs the app on the current event loop
        asyncio.set_event_loop(loop)
        try:
            # The API runs in a container of its own: a service of its own (caches included).
            api = PhasedFanout(self.service.backend, self.settings)
            handler = Mangum(create_app(self.settings, api), lifespan="off")
            with self.meter.invocation(API):
                response = handler(http_event("POST", "/jobs", encoded), LambdaContext())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
        if response["statusCode"] != 202:
            raise RuntimeError(f"POST /jobs answered {response['statusCode']}: {response['body']}")
        return str(json.loads(response["body"])["id"]), len(encoded.encode())

    def work(self) -> None:
        """One poll of the chunk queue by Lambda's SQS event source, and the batch it hands
        the chunk worker."""
        from fanout.workers.lambda_handlers import handle_chunks

        url = self.settings.chunk_queue_url
        assert url is not None, "set from bootstrap"
        messages = self.receive(url)
        if not messages:
            return
        with self.meter.invocation(WORKER):
            response = handle_chunks(self.service, {"Records": [sqs_record(m) for m in messages]})
        self.delete_succeeded(url, messages, response)

    def aggregate(self) -> None:
        """What the stream holds now, filtered and batched as Lambda's stream event source does."""
        from fanout.workers.lambda_handlers import handle_stream

        with phase(STREAM_SOURCE):
            records = [r for r in self.stream.read() if is_chunk_result_insert(r)]
        for first in range(0, len(records), STREAM_BATCH):
            with self.meter.invocation(AGGREGATOR):
                handle_stream(self.service, {"Records": records[first : first + STREAM_BATCH]})

    def notify(self, job_id: str) -> None:
        """The notify queue's messages if finalize sent one, else the schedule's next tick."""
        from fanout.workers.lambda_handlers import handle_notifications

        url = self.settings.notify_queue_url
        messages = self.receive(url) if url else []
        with self.meter.invocation(NOTIFIER):
            if messages:
                event: dict[str, Any] = {"Records": [sqs_record(m) for m in messages]}
            else:
                event = {"source": "aws.events", "detail-type": "Scheduled Event"}
            response = handle_notifications(self.service, event)
        if messages and url:
            self.delete_succeeded(url, messages, response)

    def receive(self, url: str | None) -> list[dict[str, Any]]:
        with phase(SQS_SOURCE):
            response = self.counted.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=SQS_BATCH,
                VisibilityTimeout=int(self.settings.visibility_timeout),
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
            )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def delete_succeeded(self, url: str, messages: list[dict[str, Any]], response: Any) -> None:
        """The event source deletes the records its function did not report as failed."""
        failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(messages)
            if m["MessageId"] not in failed
        ]
        if entries:
            with phase(SQS_SOURCE):
                self.counted.sqs.delete_message_batch(QueueUrl=url, Entries=entries)

    def table_items(self, job_id: str) -> list[dict[str, Any]]:
        """The items the table holds for a job (its own and its event's), as DynamoDB stores
        them (read with the uncounted client)."""
        pages = self.setup.dynamodb.get_paginator("scan").paginate(TableName=self.settings.table)
        mine = (f"JOB#{job_id}", f"EVENT#evt_{job_id}")
        return [item for page in pages for item in page.get("Items", []) if item["pk"]["S"] in mine]

    def status(self, job_id: str) -> dict[str, Any]:
        """The job item, read with the uncounted client: the benchmark's own look."""
        from fanout.backends.aws.table import decode_item, encode_item, job_key

        found = self.setup.dynamodb.get_item(
            TableName=self.settings.table, Key=encode_item(job_key(job_id)), ConsistentRead=True
        )
        return decode_item(found["Item"])


def index_layout() -> dict[str, tuple[list[str], str]]:
    """Each index's key attributes and projection, as `fanout aws bootstrap` creates them."""
    from fanout.backends.aws.bootstrap import INDEXES, PROJECTIONS

    return {name: (list(keys), PROJECTIONS[name]) for name, keys in INDEXES.items()}


class StreamSource:
    """The table's stream read shard by shard from the start, as Lambda's event source does."""

    def __init__(self, streams: Any, dynamodb: Any, table: str) -> None:
        self.streams = streams
        self.dynamodb = dynamodb
        self.table = table
        self.iterators: dict[str, str | None] = {}

    def read(self) -> list[dict[str, Any]]:
        if not self.iterators:
            arn = self.dynamodb.describe_table(TableName=self.table)["Table"]["LatestStreamArn"]
            shards = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
            for shard in shards:
                self.iterators[shard["ShardId"]] = self.streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
        records: list[dict[str, Any]] = []
        for shard_id, iterator in self.iterators.items():
            while iterator is not None:
                response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                iterator = response.get("NextShardIterator")
                self.iterators[shard_id] = iterator
                if not response.get("Records"):
                    break
                records += [lambda_record(r) for r in response["Records"]]
        return records


def is_chunk_result_insert(record: dict[str, Any]) -> bool:
    """The template's FilterCriteria: INSERTs of `RESULT#` items of kind `result`."""
    change = record.get("dynamodb", {})
    return (
        record.get("eventName") == "INSERT"
        and str(change.get("Keys", {}).get("sk", {}).get("S", "")).startswith("RESULT#")
        and change.get("NewImage", {}).get("kind") == {"S": "result"}
    )


def lambda_record(record: dict[str, Any]) -> dict[str, Any]:
    """A GetRecords record as Lambda's event has it: JSON, binary values in base64."""

    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return base64.b64encode(value).decode()
        if isinstance(value, datetime):
            return value.timestamp()
        raise TypeError(type(value).__name__)

    converted: dict[str, Any] = json.loads(json.dumps(record, default=plain))
    converted |= {"eventSource": "aws:dynamodb", "awsRegion": REGION}
    return converted


def sqs_record(message: dict[str, Any]) -> dict[str, Any]:
    """A received SQS message as a record of Lambda's SQS event."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:fanout",
        "awsRegion": REGION,
    }


def http_event(method: str, path: str, body: str) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, as a Function URL also sends."""
    domain = "abcdefghij.execute-api.us-east-1.amazonaws.com"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {**TENANT_HEADERS, "host": domain, "content-length": str(len(body))},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdefghij",
            "domainName": domain,
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": "bench",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": int(time.time() * 1000),
        },
        "body": body,
        "isBase64Encoded": False,
    }


@dataclass
class LambdaContext:
    """Lambda's context object, as much of it as Mangum's type names."""

    function_name: str = "fanout-api"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:fanout-api"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "bench"
    log_group_name: str = "/aws/lambda/fanout-api"
    log_stream_name: str = "bench"
    identity: LambdaCognitoIdentity | None = None
    client_context: LambdaMobileClientContext | None = None

    def get_remaining_time_in_millis(self) -> int:
        return 29_000
