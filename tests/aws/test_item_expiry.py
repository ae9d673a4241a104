"""Expiry on the AWS backend (README: one DynamoDB table, "TTL `expires_at` after
`FANOUT_RETENTION_DAYS`"): every item a job leaves in the table carries, as a number of epoch
seconds, the attribute the table's TTL is configured on, at the job's time plus the retention.
A job run to its end on the moto server, then the table read raw."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from fanout.models import Job, JobStatus, TenantId
from fanout.service import Fanout, JobRequest
from fanout.settings import Settings
from fanout.wiring import build
from tests.aws.moto import fresh_settings
from tests.contract.support import BackendUnavailable
from tests.waiting import wait_until

TENANT = TenantId("tenant-a")
RETENTION_DAYS = 2  # not the default 7, so a retention read from anywhere else is seen
RETENTION = RETENTION_DAYS * 24 * 3600


def on_moto(settings: Settings) -> tuple[Fanout, Any, str]:
    try:
        aws, clients = fresh_settings(
            settings.model_copy(update={"retention_days": RETENTION_DAYS})
        )
    except BackendUnavailable as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"the aws backend is unavailable: {error}")
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


def test_every_item_of_a_job_expires_by_the_table_s_ttl_at_its_time_plus_the_retention(
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
    ended = time.time()

    ttl = clients.dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    attribute = ttl["AttributeName"]
    items = clients.dynamodb.scan(TableName=table)["Items"]
    mine = [i for i in items if job.id in i["pk"]["S"]]
    kinds = sorted({i.get("kind", {"S": i["sk"]["S"]})["S"] for i in mine})

    assert ttl["TimeToLiveStatus"] == "ENABLED"
    assert kinds == ["EVENT", "chunk", "job", "plan", "result"]
    untimed = [(i["pk"]["S"], i["sk"]["S"]) for i in mine if "N" not in i.get(attribute, {})]
    assert untimed == []  # DynamoDB's TTL skips an item without the attribute as a number
    for item in mine:
        expires = int(item[attribute]["N"])
        assert int(job.created_at) + RETENTION <= expires <= int(ended) + RETENTION, item
    [job_item] = [i for i in mine if i["sk"]["S"] == "JOB"]
    assert int(job_item[attribute]["N"]) == int(done.finished_at + RETENTION)
