"""`fanout aws bootstrap` against the moto server: the resources the AWS backend needs, created
on the configured endpoint, safe to repeat."""

from __future__ import annotations

import uuid

import pytest
from pydantic_core import from_json
from typer.testing import CliRunner

from fanout.backends.aws.notices import SqsNotificationQueue
from fanout.backends.aws.queue import SqsChunkQueue
from fanout.cli import app
from fanout.settings import Settings
from fanout.wiring import build
from tests.aws.moto import REGION, clients, endpoint
from tests.contract.support import BackendUnavailable, unavailable


@pytest.fixture
def environment() -> dict[str, str]:
    try:
        url = endpoint()
    except BackendUnavailable as error:
        unavailable("the aws backend", error)
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "FANOUT_TABLE": f"boot-{uuid.uuid4().hex[:8]}",
        "FANOUT_BUCKET": f"boot-{uuid.uuid4().hex[:8]}",
        "FANOUT_MAX_RECEIVE_COUNT": "4",
    }


def test_bootstrap_creates_the_table_queues_and_bucket_and_can_run_again(
    environment: dict[str, str],
) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["aws", "bootstrap"], env=environment)
    again = runner.invoke(app, ["aws", "bootstrap"], env=environment)

    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output
    printed = dict(line.split("=", 1) for line in first.output.split())
    assert printed["FANOUT_TABLE"] == environment["FANOUT_TABLE"]
    aws = clients()
    table = aws.dynamodb.describe_table(TableName=environment["FANOUT_TABLE"])["Table"]
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    ttl = aws.dynamodb.describe_time_to_live(TableName=environment["FANOUT_TABLE"])
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"
    attributes = aws.sqs.get_queue_attributes(
        QueueUrl=printed["FANOUT_CHUNK_QUEUE_URL"], AttributeNames=["RedrivePolicy"]
    )["Attributes"]
    assert from_json(attributes["RedrivePolicy"])["maxReceiveCount"] == 4
    aws.s3.head_bucket(Bucket=environment["FANOUT_BUCKET"])


def test_the_aws_backend_finds_bootstrapped_queues_by_name(environment: dict[str, str]) -> None:
    """With only the table named, the backend looks the queues up by the names bootstrap gave
    them: the very queues bootstrap printed, not any other queue on the endpoint."""
    booted = CliRunner().invoke(app, ["aws", "bootstrap"], env=environment)
    assert booted.exit_code == 0, booted.output
    printed = dict(line.split("=", 1) for line in booted.output.split())
    settings = Settings(backend="aws", table=environment["FANOUT_TABLE"])

    backend = build(settings, clients()).backend

    assert isinstance(backend.queue, SqsChunkQueue)
    assert isinstance(backend.notifications, SqsNotificationQueue)
    found = {
        "FANOUT_CHUNK_QUEUE_URL": backend.queue.queue_url,
        "FANOUT_DEAD_LETTER_QUEUE_URL": backend.queue.dead_letter_queue_url,
        "FANOUT_NOTIFY_QUEUE_URL": backend.notifications.queue_url,
    }
    assert found == {name: printed[name] for name in found}
    assert len(set(found.values())) == 3
