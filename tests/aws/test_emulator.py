"""Why the emulator serializes DynamoDB: conditional writes must be atomic, as on AWS, or two
racing writers both pass one condition (fan-in would double count). On a plain moto server this
test finds more winners than the condition allows (315 of 300 here); on the emulator, exactly
300."""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.aws import moto
from tests.contract.support import BackendUnavailable, unavailable

WRITERS = 16
LIMIT = 300


@pytest.fixture
def dynamodb() -> Any:
    try:
        return moto.client("dynamodb")
    except BackendUnavailable as error:
        unavailable("the moto server", error)


@pytest.fixture
def eager_thread_switches() -> Iterator[None]:
    """The server runs in this process: switching threads every microsecond (not every 5 ms)
    opens moto's window between a condition's check and its write to whoever races for it."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("eager_thread_switches")
def test_a_contested_conditional_add_has_exactly_as_many_winners_as_its_condition_allows(
    dynamodb: Any,
) -> None:
    """Writers add one to a counter while it is under LIMIT, until the condition refuses."""
    table = f"race-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    key = {"pk": {"S": "counter"}}
    dynamodb.put_item(TableName=table, Item={**key, "n": {"N": "0"}})
    wins = [0] * WRITERS
    start = threading.Barrier(WRITERS)
    # botocore builds a client's exception classes on first use: taken by racing threads, a
    # refusal could be raised as one build's class and caught as another's (and not caught).
    refused = dynamodb.exceptions.ConditionalCheckFailedException

    def write(writer: int) -> None:
        start.wait()
        for _ in range(2 * LIMIT):  # bounded: the condition refuses long before
            try:
                dynamodb.update_item(
                    TableName=table,
                    Key=key,
                    UpdateExpression="ADD n :one",
                    ConditionExpression="n < :limit",
                    ExpressionAttributeValues={":one": {"N": "1"}, ":limit": {"N": str(LIMIT)}},
                )
            except refused:
                return
            wins[writer] += 1

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    final = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]["n"]["N"]
    assert (sum(wins), int(final)) == (LIMIT, LIMIT)
