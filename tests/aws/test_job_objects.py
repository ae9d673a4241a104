"""A job's S3 objects go when its job item leaves the table (infra/template.yaml's
JobObjectsFunction; `fanout.backends.aws.job_objects`): jobs run on the moto server with a
bucket, then a job item is deleted as DynamoDB's TTL deletes it (moto runs no TTL), and the
table's stream, read from the server, goes through the Lambda handler or the local poller."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from fanout import task
from fanout.backends.aws.blobs import S3Blobs
from fanout.backends.aws.job_objects import CONSUMER, S3JobObjects
from fanout.backends.aws.streams import DynamoStreamReader
from fanout.errors import BackendError
from fanout.models import Job, JobId, JobStatus
from fanout.service import Fanout, JobRequest
from fanout.settings import Settings
from fanout.wiring import build
from fanout.workers import lambda_handlers
from fanout.workers.aws_pollers import drain_job_objects, drain_stream, job_objects_loop, pollers
from fanout.workers.local import Loop
from fanout.workers.notifier import Notifier
from tests.aws.lambda_events import stream_event
from tests.aws.moto import fresh_settings
from tests.aws.test_item_expiry import TENANT, run_to_end
from tests.contract.support import BackendUnavailable, unavailable
from tests.waiting import wait_until

LARGE = "x" * 4000  # two outputs make a result over INLINE_RESULT_LIMIT: an object of its own
FAILS = "tests_job_objects_every_fourth_fails"


@task(name=FAILS, max_attempts=1)
def every_fourth_fails(item: int) -> str:
    if item % 4 == 3:
        raise ValueError(f"{item} fails")
    return f"{item}{LARGE}"


@dataclass
class OnMoto:
    service: Fanout
    clients: Any
    settings: Settings

    @property
    def bucket(self) -> str:
        assert self.settings.bucket is not None
        return self.settings.bucket

    def keys(self) -> set[str]:
        """Every key in the bucket (all pages)."""
        found: set[str] = set()
        request: dict[str, Any] = {"Bucket": self.bucket}
        while True:
            listed = self.clients.s3.list_objects_v2(**request)
            found |= {o["Key"] for o in listed.get("Contents", [])}
            if not listed.get("IsTruncated"):
                return found
            request["ContinuationToken"] = listed["NextContinuationToken"]

    def put(self, keys: list[str]) -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda k: self.clients.s3.put_object(Bucket=self.bucket, Key=k), keys))

    def expire(self, job_id: str) -> None:
        """What DynamoDB's TTL does to an expired job item: a DeleteItem (a REMOVE record)."""
        self.clients.dynamodb.delete_item(
            TableName=self.settings.table,
            Key={"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": "JOB"}},
        )

    def objects(self, batch: int = 1000) -> S3JobObjects:
        return S3JobObjects(S3Blobs(self.bucket, self.clients.s3), batch)

    def stream(self, after: dict[str, str]) -> dict[str, Any]:
        """The stream's records past `after`, as the event source delivers them, unfiltered:
        every other kind of record reaches the handler too."""
        clients = self.clients
        return stream_event(clients.dynamodb, clients.streams, self.settings.table, after)


@pytest.fixture
def moto(settings: Settings) -> OnMoto:
    try:
        aws, clients = fresh_settings(settings)
    except BackendUnavailable as error:
        unavailable("the aws backend", error)
    return OnMoto(build(aws, clients), clients, aws)


def of_job(keys: set[str], job_id: str) -> set[str]:
    """The keys of job `job_id` by the layout `job_objects.py` describes."""
    singles = {f"inputs/{job_id}.json", f"outputs/{job_id}.jsonl"}
    under = (f"inputs/{job_id}/", f"results/{job_id}/")
    return {k for k in keys if k in singles or k.startswith(under)}


def kinds(keys: set[str]) -> set[str]:
    """What each key of one job is: the job's input, a chunk's input, a result, a carried
    result, the output."""
    named: dict[str, Callable[[str], bool]] = {
        "input": lambda k: k.startswith("inputs/") and k.endswith(".json") and k.count("/") == 1,
        "chunk input": lambda k: k.startswith("inputs/") and k.count("/") == 2,
        "result": lambda k: k.startswith("results/") and not k.endswith("/carried.jsonl"),
        "carried result": lambda k: k.startswith("results/") and k.endswith("/carried.jsonl"),
        "output": lambda k: k.startswith("outputs/"),
    }
    return {name for name, test in named.items() for k in keys if test(k)}


def run_and_redrive(moto: OnMoto) -> Job:
    """A job that leaves every kind of object: its input, results over the inline limit, the
    output; and from its redrive, the failed items' chunk inputs and the results it carried."""
    service = moto.service
    request = JobRequest(task=FAILS, items=list(range(8)), params={}, chunk_size=4)
    job, _ = service.submit(TENANT, request)
    assert run_to_end(service, job).status is JobStatus.FAILED
    service.redrive(TENANT, job.id)
    done = run_to_end(service, job)
    assert (done.succeeded, done.failed) == (6, 2)
    return done


def neighbours(job_id: str) -> list[str]:
    """Keys of jobs whose ids share a prefix with `job_id`, and files of no job."""
    keys = []
    for other in (f"{job_id}0", f"{job_id}-x", job_id[:-1]):
        keys += [
            f"inputs/{other}.json",
            f"inputs/{other}/0-1.json",
            f"results/{other}/0-1/1.jsonl",
            f"outputs/{other}.jsonl",
        ]
    return [*keys, "uploads/items.jsonl", "jobs/echo/items.jsonl", f"inputs/{job_id}.jsonl"]


class Runtime:
    """How removed job items reach the deleter: Lambda's event source (the handler), or the
    poller's loop `fanout serve --backend aws` runs in a thread of its own."""

    def __init__(self, moto: OnMoto, kind: str) -> None:
        self.moto, self.kind = moto, kind
        self.after: dict[str, str] = {}
        self.loop = job_objects_loop(moto.service) if kind == "poller" else None

    def __enter__(self) -> Runtime:
        if self.loop is not None:
            self.loop.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.loop is not None:
            self.loop.stop()

    def deliver(self) -> None:
        if self.kind == "lambda":
            event = self.moto.stream(self.after)
            lambda_handlers.handle_removed_jobs(self.moto.service, event)
        # else the loop reads the stream every DELETE_EVERY seconds


@pytest.mark.parametrize("kind", ["lambda", "poller"])
def test_a_removed_job_item_deletes_every_object_of_its_job_and_no_other(
    moto: OnMoto, kind: str
) -> None:
    job = run_and_redrive(moto)
    other = run_and_redrive(moto)
    moto.put(neighbours(job.id))
    before = moto.keys()
    mine = of_job(before, job.id)
    assert kinds(mine) == {"input", "chunk input", "result", "carried result", "output"}
    assert kinds(of_job(before, other.id)) == kinds(mine)

    moto.expire(job.id)

    with Runtime(moto, kind) as runtime:

        def gone() -> bool:
            runtime.deliver()
            return not of_job(moto.keys(), job.id)

        wait_until(gone, 30, f"the objects of job {job.id} to be deleted", every=0.1)
    assert moto.keys() == before - mine
    assert moto.service.get(TENANT, other.id).status is JobStatus.FAILED


def test_removals_of_other_items_delete_nothing_and_a_retried_batch_deletes_nothing_twice(
    moto: OnMoto,
) -> None:
    job = run_and_redrive(moto)  # its redrive deleted the result items it cut: REMOVE records
    table, dynamodb = moto.settings.table, moto.clients.dynamodb
    items = dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"JOB#{job.id}"}},
    )["Items"]
    for item in items:  # every other item of the job, gone as TTL removes them
        if item["sk"]["S"] != "JOB":
            dynamodb.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
    before = moto.keys()
    service = moto.service

    others = moto.stream({})  # and the INSERT and every MODIFY of the job item
    removed = [r for r in others["Records"] if r["eventName"] == "REMOVE"]
    assert len(removed) > len(items) - 1  # the redrive's and those above, none of the job item
    assert lambda_handlers.handle_removed_jobs(service, others) == {}
    assert moto.keys() == before

    moto.expire(job.id)
    every = moto.stream({})
    first = lambda_handlers.handle_removed_jobs(service, every)
    again = lambda_handlers.handle_removed_jobs(service, every)  # Lambda retries the batch

    assert list(first) == list(again) == [job.id]
    assert first[job.id] == len(of_job(before, job.id)) - 2  # the listed ones, not the singles
    assert again[job.id] == 0
    assert moto.keys() == before - of_job(before, job.id)


def test_a_job_with_more_objects_than_a_page_loses_them_all_and_its_neighbour_none(
    moto: OnMoto,
) -> None:
    """ListObjectsV2 returns 1,000 keys at most, DeleteObjects takes 1,000 at most."""
    job_id, neighbour = JobId("0190aa"), JobId("0190aab")
    chunks = [f"{start}-{start + 1}" for start in range(1_100)]
    mine = [f"results/{job_id}/{c}/1.jsonl" for c in chunks] + [
        f"inputs/{job_id}/{c}.json" for c in chunks[:1_050]
    ]
    theirs = [f"results/{neighbour}/{c}/1.jsonl" for c in chunks[:30]]
    moto.put(mine + theirs)

    deleted = moto.objects().delete(job_id)

    assert deleted == len(mine)
    assert moto.keys() == set(theirs)


def test_the_poller_reads_the_stream_from_checkpoints_of_its_own(moto: OnMoto) -> None:
    """As two event source mappings on one stream each keep their position: the deleter
    reading every record leaves the aggregator's to read, after a restart too."""
    service = moto.service
    job, _ = service.submit(
        TENANT, JobRequest(task="echo", items=list(range(6)), params={}, chunk_size=2)
    )
    for delivery in wait_until(lambda: service.backend.queue.receive(10, 60), 15, "chunks"):
        service.process(delivery)
    assert drain_job_objects(service) > 0

    restarted = build(moto.settings, moto.clients)  # its aggregator starts from the table's
    drain_stream(restarted)

    assert restarted.get(TENANT, job.id).status is JobStatus.SUCCEEDED
    changes = restarted.backend.changes
    assert isinstance(changes, DynamoStreamReader)
    checkpoints = {
        item["pk"]
        for pk in ("STREAM", f"STREAM#{CONSUMER}")
        for item in changes.table.query("pk = :pk", {":pk": pk}, consistent=True)
    }
    assert checkpoints == {"STREAM", f"STREAM#{CONSUMER}"}


def test_the_aws_runtime_runs_the_deleter_beside_the_aggregator(moto: OnMoto) -> None:
    """`fanout serve --backend aws` and `fanout worker` start what `pollers` lists."""
    parts = pollers(moto.service)
    try:
        loops = [part.thread.name for part in parts if isinstance(part, Loop)]
        assert loops[:2] == ["aggregator", "job objects"]
    finally:
        for part in parts:
            if isinstance(part, Notifier):
                part.loop.close()  # never started


def test_without_a_bucket_the_aws_runtime_runs_no_deleter(moto: OnMoto) -> None:
    """Every input and result is in the table then: no objects, so no poller reading the stream
    for them, and a removed job item's batch deletes nothing."""
    service = build(moto.settings.model_copy(update={"bucket": None}), moto.clients)
    job, _ = service.submit(
        TENANT, JobRequest(task="echo", items=list(range(4)), params={}, chunk_size=2)
    )
    moto.expire(job.id)

    assert not service.deletes_job_objects
    assert service.delete_job_objects_changes() == 0
    assert lambda_handlers.handle_removed_jobs(service, moto.stream({})) == {}
    parts = pollers(service)
    try:
        assert "job objects" not in [part.thread.name for part in parts if isinstance(part, Loop)]
    finally:
        for part in parts:
            if isinstance(part, Notifier):
                part.loop.close()  # never started


class Refusing:
    """The bucket's S3 client, but DeleteObjects refuses the keys `refused` names, as S3 does
    when it cannot delete some keys of a request: 200, with those keys under `Errors`."""

    def __init__(self, client: Any, refused: Callable[[str], bool]) -> None:
        self.client, self.refused = client, refused

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def delete_objects(self, Bucket: str, Delete: dict[str, Any]) -> dict[str, Any]:
        keys = [o["Key"] for o in Delete["Objects"]]
        kept = [{"Key": k} for k in keys if not self.refused(k)]
        if kept:
            self.client.delete_objects(Bucket=Bucket, Delete={**Delete, "Objects": kept})
        return {
            "Errors": [
                {"Key": k, "Code": "AccessDenied", "Message": "Access Denied"}
                for k in keys
                if self.refused(k)
            ]
        }


def test_a_key_s3_refuses_to_delete_fails_the_batch_and_its_retry_deletes_the_rest(
    moto: OnMoto,
) -> None:
    """DeleteObjects answers 200 when it deletes only some keys: the deleter raises, so the
    stream batch is retried, and the retry deletes what was left."""
    job_id = JobId("0190ac")
    mine = [f"results/{job_id}/{n}-{n + 1}/1.jsonl" for n in range(5)]
    mine += [f"inputs/{job_id}.json", f"outputs/{job_id}.jsonl"]
    moto.put(mine)
    refused = mine[2]
    objects = S3JobObjects(S3Blobs(moto.bucket, Refusing(moto.clients.s3, refused.__eq__)))

    with pytest.raises(BackendError, match=f"did not delete 1 objects, first {refused}"):
        objects.delete(job_id)
    assert moto.keys() == {refused}

    assert moto.objects().delete(job_id) == 1
    assert moto.keys() == set()
