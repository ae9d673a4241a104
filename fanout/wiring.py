"""Build the service from settings: the one place that picks the adapters."""

from __future__ import annotations

import os
from typing import Any

from fanout import tasks
from fanout.service import Backend, Fanout
from fanout.settings import Settings

# What one chunk costs besides its items, for sizing chunks (fanout.chunking). SQLite: a few
# write transactions and a queue poll. AWS: an SQS send, receive and delete, three DynamoDB
# writes, an S3 ranged GET and a stream record, each a network round trip of 5-20 ms.
SQLITE_CHUNK_OVERHEAD = 0.003
AWS_CHUNK_OVERHEAD = 0.05


def sqlite_backend(settings: Settings) -> Backend:
    from fanout.backends.files import LocalInputFiles
    from fanout.backends.sqlite import Database, SqliteChunkQueue, SqliteStore
    from fanout.backends.sqlite.retention import SqliteRetention
    from fanout.backends.sqlite.stats import SqliteTaskStats
    from fanout.backends.uploads import LocalUploads

    db = Database(settings.database)
    uploads = LocalUploads(settings.inputs)
    store = SqliteStore(db)
    queue = SqliteChunkQueue(db, settings.max_receive_count)
    return Backend(
        jobs=store,
        chunks=store,
        queue=queue,
        leases=queue,
        outbox=store,
        idempotency=store,
        reconcilable=store,
        where=str(settings.database.resolve()),
        store_enqueues=True,
        inputs=LocalInputFiles(settings.inputs),
        uploads=uploads,
        upload_receiver=uploads,
        stats=SqliteTaskStats(db),
        retention=SqliteRetention(db),
        chunk_overhead=SQLITE_CHUNK_OVERHEAD,
        workers=settings.workers,
        wakeups=db.bells,
    )


def on_lambda() -> bool:
    """Lambda sets AWS_LAMBDA_FUNCTION_NAME in every execution environment."""
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def aws_backend(
    settings: Settings, session_or_clients: Any = None, event_sources: bool | None = None
) -> Backend:
    """DynamoDB + SQS + S3. `session_or_clients`: a boto3 session, or `Clients` already made
    (tests point them at an emulator); None builds clients from the environment. Queue URLs
    not configured are looked up by the names `fanout aws bootstrap` gives them.
    `event_sources` (default: on Lambda): messages arrive through Lambda's event sources,
    which delete them, so the chunk queue does not."""
    from fanout.backends.aws import (
        Clients,
        DynamoFanIn,
        DynamoIdempotencyStore,
        DynamoJobStore,
        DynamoOutbox,
        DynamoStreamReader,
        S3Blobs,
        SqsChunkQueue,
        Table,
        meter,
    )
    from fanout.backends.aws.bootstrap import queue_names, queue_url
    from fanout.backends.aws.clients import when_made
    from fanout.backends.aws.inputs import S3InputFiles
    from fanout.backends.aws.job_objects import CONSUMER, S3JobObjects
    from fanout.backends.aws.notices import SqsNotificationQueue
    from fanout.backends.aws.outputs import S3FinalOutputs
    from fanout.backends.aws.stats import DynamoTaskStats
    from fanout.backends.aws.uploads import S3Uploads

    clients = (
        session_or_clients
        if isinstance(session_or_clients, Clients)
        else Clients.create(session_or_clients)
    )
    for client in (clients.dynamodb, clients.sqs, clients.s3):
        when_made(client, meter.attach)
    names = queue_names(settings)
    table = Table(settings.table, clients.dynamodb)
    blobs = S3Blobs(settings.bucket, clients.s3)
    store = DynamoJobStore(table, blobs, settings.retention_days)
    queue = SqsChunkQueue(
        clients.sqs,
        settings.chunk_queue_url or queue_url(clients, names["chunks"]),
        settings.dead_letter_queue_url or queue_url(clients, names["dead"]),
        settings.receive_wait_seconds,
        deleted_by_event_source=on_lambda() if event_sources is None else event_sources,
    )
    return Backend(
        jobs=store,
        chunks=store,
        queue=queue,
        leases=queue,
        outbox=DynamoOutbox(table),
        idempotency=DynamoIdempotencyStore(table),
        reconcilable=store,
        where=f"DynamoDB table {settings.table}",
        fan_in=DynamoFanIn(table, store),
        changes=DynamoStreamReader(table, clients.streams),
        notifications=SqsNotificationQueue(
            clients.sqs,
            settings.notify_queue_url or queue_url(clients, names["notify"]),
            settings.receive_wait_seconds,
        ),
        # Without a bucket there is nowhere to write it: results are read from the table.
        outputs=S3FinalOutputs(blobs) if settings.bucket else None,
        inputs=S3InputFiles(settings.bucket, clients.s3),
        uploads=S3Uploads(settings.bucket, clients.s3) if settings.bucket else None,
        stats=DynamoTaskStats(table),
        chunk_overhead=AWS_CHUNK_OVERHEAD,
        metered=meter.scope,
        job_objects=S3JobObjects(blobs),
        # Its poller only with a bucket: without one, every input and result is in the table.
        job_objects_changes=(
            DynamoStreamReader(table, clients.streams, consumer=CONSUMER)
            if settings.bucket
            else None
        ),
    )


def build(settings: Settings, session_or_clients: Any = None) -> Fanout:
    """The service on the configured backend, with the built-in and configured tasks."""
    tasks.load(settings.tasks, settings.app_dir)
    if settings.backend == "aws":
        return Fanout(aws_backend(settings, session_or_clients), settings)
    return Fanout(sqlite_backend(settings), settings)
