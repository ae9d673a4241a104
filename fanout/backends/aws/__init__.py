"""The AWS backend: DynamoDB (one table, its stream for the fan-in), SQS and S3, with boto3.

Importing this package imports boto3 only when clients are created (`Clients.create`).
"""

from fanout.backends.aws.blobs import S3Blobs
from fanout.backends.aws.clients import Clients
from fanout.backends.aws.fanin import DynamoFanIn
from fanout.backends.aws.outbox import DynamoIdempotencyStore, DynamoOutbox
from fanout.backends.aws.queue import SqsChunkQueue
from fanout.backends.aws.store import DynamoJobStore
from fanout.backends.aws.streams import DynamoStreamReader
from fanout.backends.aws.table import Table

__all__ = [
    "Clients",
    "DynamoFanIn",
    "DynamoIdempotencyStore",
    "DynamoJobStore",
    "DynamoOutbox",
    "DynamoStreamReader",
    "S3Blobs",
    "SqsChunkQueue",
    "Table",
]
