"""Expiry on the AWS backend (README: one DynamoDB table, "TTL `expires_at` after
`FANOUT_RETENTION_DAYS`"): every item a job leaves in the table carries, as a number of epoch
seconds, the attribute the table's TTL is configured on, at the job's time plus the retention:
what a running job needs (chunk inputs, plan pages, results) the retention after the job's
deadline, so nothing goes while the job still runs; what records its end (the job item, its event)
the retention after that end. Jobs run on the moto server, then the table read raw."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fanout.backends.aws.expiry import LONGEST_RUN
from fanout.backends.aws.outbox import idempotency_key
from fanout.models import Job, JobStatus, TenantId
from fanout.service import Fanout, JobRequest
from fanout.settings import Settings
from fanout.wiring import build
from tests.aws.moto import fresh_settings
from tests.contract.support import BackendUnavailable, new_job, unavailable
from tests.contract.test_store_contract import claim, run
from tests.waiting import wait_until

TENANT = TenantId("tenant-a")
RETENTION_DAYS = 2  # not the default 7, so a retention read from anywhere else is seen
RETENTION = RETENTION_DAYS * 24 * 3600
DAY = 24 * 3600  # README: idempotency keys expire after 24 hours


def on_moto(settings: Settings) -> tuple[Fanout, Any, str]:
    try:
        aws, clients = fresh_settings(
            settings.model_copy(update={"retention_days": RETENTION_DAYS})
        )
    except BackendUnavailable as error:
        unavailable("the aws backend", error)
    return build(aws, clients), clients, aws.table


def run_to_end(service: Fanout, job: Job) -> Job:
    """The pipeline's steps by hand, as the Lambda functions take them: chunks from SQS, the
    stream's records to the aggregator, until the job ends."""
    queue, changes = service.backend.queue, service.backend.changes
    assert changes is not None
    deadline = time.monotonic() + 60
    while not (done := service.get(TENANT, job.id)).status.terminal:
        assert time.monotonic() < deadline, "the job did not end within 60 s"
        for delivery in wait_until(lambda: queue.receive(10, 60), 15, "chunk messages"):
            service.process(delivery)
        for batch in changes.read(100):
            service.aggregate(batch.records)
            changes.commit(batch)
    return done


def test_every_item_of_a_job_expires_by_the_table_s_ttl_after_its_deadline_or_its_end(
    settings: Settings,
) -> None:
    service, clients, table = on_moto(settings)
    request = JobRequest(
        task="echo",
        items=list(range(10)),
        params={},
        webhook_url="http://127.0.0.1:9/hook",  # an event item too
        chunk_size=3,
    )
    job, _ = service.submit(TENANT, request)
    done = run_to_end(service, job)
    assert done.status is JobStatus.SUCCEEDED and done.finished_at is not None

    ttl = clients.dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    attribute = ttl["AttributeName"]
    mine = raw_items(clients, table, job.id)
    kinds = sorted({kind_of(i) for i in mine})

    assert ttl["TimeToLiveStatus"] == "ENABLED"
    assert kinds == ["EVENT", "chunk", "job", "plan", "result"]
    untimed = [(i["pk"]["S"], i["sk"]["S"]) for i in mine if "N" not in i.get(attribute, {})]
    assert untimed == []  # DynamoDB's TTL skips an item without the attribute as a number
    # What the running job needs, the retention after its deadline (LONGEST_RUN without
    # timeout_seconds); what records its end, the retention after that end.
    needed = int(job.created_at + LONGEST_RUN + RETENTION)
    ending = int(done.finished_at + RETENTION)
    assert {(kind_of(i), int(i[attribute]["N"])) for i in mine} == {
        ("chunk", needed),
        ("plan", needed),
        ("result", needed),
        ("EVENT", ending),
        ("job", ending),
    }


def kind_of(item: dict[str, Any]) -> str:
    return str(item.get("kind", {"S": item["sk"]["S"]})["S"])


def raw_items(clients: Any, table: str, job_id: str) -> list[dict[str, Any]]:
    items = clients.dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    return [i for i in items if job_id in i["pk"]["S"]]


def test_nothing_a_running_job_needs_expires_before_its_deadline(settings: Settings) -> None:
    """A job running longer than the retention keeps its inputs, plan and results: they expire
    the retention after the job's deadline (its timeout here), and the job item not at all
    while it runs."""
    service, clients, table = on_moto(settings)
    timeout = 3 * RETENTION  # runs may outlast the retention
    request = JobRequest(
        task="echo", items=list(range(10)), params={}, chunk_size=3, timeout_seconds=timeout
    )
    job, _ = service.submit(TENANT, request)
    queue = service.backend.queue
    [first, *_] = wait_until(lambda: queue.receive(10, 60), 15, "chunk messages")
    service.process(first)  # one chunk recorded, the rest still to run

    mine = raw_items(clients, table, job.id)
    running = service.get(TENANT, job.id)
    assert not running.status.terminal
    assert sorted({kind_of(i) for i in mine}) == ["chunk", "job", "plan", "result"]
    [job_item] = [i for i in mine if kind_of(i) == "job"]
    assert "expires_at" not in job_item
    needed = int(job.created_at + timeout + RETENTION)
    assert {int(i["expires_at"]["N"]) for i in mine if kind_of(i) != "job"} == {needed}


def test_a_job_without_a_timeout_is_ended_at_the_longest_run(settings: Settings) -> None:
    """Its items expire the retention after LONGEST_RUN, so the job must end by then: the
    reconciler fails it at that deadline as it fails a job past its timeout."""
    service, clients, table = on_moto(settings)
    request = JobRequest(task="echo", items=list(range(4)), params={}, chunk_size=2)
    job, _ = service.submit(TENANT, request)
    stored = service.backend.jobs.get_job(job.id)
    assert stored is not None and stored.deadline == pytest.approx(job.created_at + LONGEST_RUN)
    # Fourteen days on: the job's deadline is moved back instead of waiting for it.
    clients.dynamodb.update_item(
        TableName=table,
        Key={"pk": {"S": f"JOB#{job.id}"}, "sk": {"S": "JOB"}},
        UpdateExpression="SET deadline = :past",
        ExpressionAttributeValues={":past": {"N": str(time.time() - 1)}},
    )

    service.reconcile()

    ended = service.get(TENANT, job.id)
    assert ended.status is JobStatus.FAILED
    assert ended.error == "timed out: ran past the longest a job without timeout_seconds runs"


def test_a_redrive_keeps_what_its_run_needs_until_the_retention_after_its_new_deadline(
    settings: Settings,
) -> None:
    """A redrive runs again, so its own deadline counts: the results it keeps, the chunks it
    runs and its plan expire the retention after it (first-run items expire earlier)."""
    service, clients, table = on_moto(settings)
    backend = service.backend
    job, chunks = new_job(total=10, chunk_size=2, max_concurrency=5)
    for chunk in backend.jobs.create_job(job, chunks):
        run(backend, chunk, frozenset({3, 4, 9}))
    assert claim(backend, job, JobStatus.FAILED)
    redriven_at = time.time() + 3600.0  # later than the first run's items would have lasted
    backend.jobs.redrive(job.id, redriven_at)

    mine = raw_items(clients, table, job.id)
    [job_item] = [i for i in mine if kind_of(i) == "job"]
    assert "expires_at" not in job_item  # running again
    needed = [i for i in mine if kind_of(i) == "result" or i.get("state", {}).get("S") == "ready"]
    assert len([i for i in needed if kind_of(i) == "result"]) >= 5  # kept and carried
    assert len([i for i in needed if kind_of(i) == "chunk"]) == 3  # items 3, 4 and 9
    expires = int(redriven_at + LONGEST_RUN + RETENTION)
    assert {int(i["expires_at"]["N"]) for i in needed} == {expires}
    plan_expiries = {int(i["expires_at"]["N"]) for i in mine if kind_of(i) == "plan"}
    assert expires in plan_expiries


def test_an_idempotency_key_expires_by_the_table_s_ttl_a_day_after_its_first_use(
    settings: Settings,
) -> None:
    """README: idempotency keys expire after 24 hours. A key older than a day is no longer
    honoured (tests/contract/test_idempotency_expiry.py), and its item carries the TTL
    attribute a day after the key's first use, so DynamoDB deletes it instead of keeping every
    key forever."""
    service, clients, table = on_moto(settings)
    request = JobRequest(task="echo", items=[1, 2], params={})
    before = time.time()

    service.submit_once(TENANT, request, "key-expiring", lambda job, _: job.id.encode())
    service.submit_once(TENANT, request, "key-expiring", lambda job, _: job.id.encode())

    after = time.time()
    ttl = clients.dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    key = idempotency_key(TENANT, "key-expiring")
    item = clients.dynamodb.get_item(
        TableName=table, Key={"pk": {"S": key["pk"]}, "sk": {"S": key["sk"]}}
    )["Item"]
    expires = float(item[ttl["AttributeName"]]["N"])
    assert int(before + DAY) <= expires <= after + DAY
