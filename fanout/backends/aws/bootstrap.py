"""Create the table, queues and bucket on the configured endpoint: for emulators and quick
trials. Production uses the SAM template in `infra/`, which declares the same resources.
Every step is safe to repeat."""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json

from fanout.backends.aws.clients import Clients, error_code
from fanout.settings import Settings

# The table's schema, as the SAM template declares it too.
ATTRIBUTES = {
    "pk": "S",
    "sk": "S",
    "tenant": "S",
    "id": "S",
    "status_id": "S",
    "active": "S",
    "due": "S",
    "next_attempt_at": "N",
}
INDEXES = {  # name: (partition key, sort key)
    "by_tenant": ("tenant", "id"),
    "by_tenant_status": ("tenant", "status_id"),
    "active": ("active", "id"),  # sparse: non-terminal jobs only
    "due": ("due", "next_attempt_at"),  # sparse: pending webhook events only
}
# What each index holds beside the keys. DynamoDB rewrites an index entry whenever a write
# changes an attribute the index holds, at the cost of a write of that entry: a job's counters
# move on every chunk, so an index of whole items adds a write unit to each chunk's job update.
# The listing indexes hold keys only (a listing then reads the jobs it found: reads cost an
# eighth of writes, and listings are rare beside chunks). `active` holds whole items: every
# submission's backlog check and every sweep reads all its jobs whole, in one query. `due`
# holds whole items too: its events are written a few times only, after their job has ended.
PROJECTIONS = {
    "by_tenant": "KEYS_ONLY",
    "by_tenant_status": "KEYS_ONLY",
    "active": "ALL",
    "due": "ALL",
}
TTL_ATTRIBUTE = "expires_at"


def queue_names(settings: Settings) -> dict[str, str]:
    return {
        "chunks": f"{settings.table}-chunks",
        "dead": f"{settings.table}-dead",
        "notify": f"{settings.table}-notify",
    }


def queue_url(clients: Clients, name: str) -> str:
    url: str = clients.sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return url


def bootstrap(settings: Settings, clients: Clients) -> dict[str, str]:
    """Create what is missing; returns the settings that point at it, as environment
    variables."""
    create_table(settings.table, clients.dynamodb)
    names = queue_names(settings)
    dead = _queue(clients, names["dead"], {"MessageRetentionPeriod": str(14 * 24 * 3600)})
    dead_arn = clients.sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    redrive = {"deadLetterTargetArn": dead_arn, "maxReceiveCount": settings.max_receive_count}
    chunks = _queue(
        clients,
        names["chunks"],
        {
            "RedrivePolicy": to_json(redrive).decode(),
            "VisibilityTimeout": str(int(settings.visibility_timeout)),
        },
    )
    notify = _queue(clients, names["notify"], {})
    environment = {
        "FANOUT_TABLE": settings.table,
        "FANOUT_CHUNK_QUEUE_URL": chunks,
        "FANOUT_DEAD_LETTER_QUEUE_URL": dead,
        "FANOUT_NOTIFY_QUEUE_URL": notify,
    }
    if settings.bucket:
        try:
            clients.s3.create_bucket(Bucket=settings.bucket)
        except Exception as error:
            if error_code(error) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise
        environment["FANOUT_BUCKET"] = settings.bucket
    return environment


def create_table(name: str, client: Any) -> None:
    try:
        client.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": a, "AttributeType": t} for a, t in ATTRIBUTES.items()
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": index,
                    "KeySchema": [
                        {"AttributeName": hash_key, "KeyType": "HASH"},
                        {"AttributeName": range_key, "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": PROJECTIONS[index]},
                }
                for index, (hash_key, range_key) in INDEXES.items()
            ],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
    except Exception as error:
        if error_code(error) != "ResourceInUseException":
            raise
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
    try:
        client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
    except Exception as error:
        if error_code(error) != "ValidationException":  # TTL is already enabled
            raise


def _queue(clients: Clients, name: str, attributes: dict[str, str]) -> str:
    url: str = clients.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url
