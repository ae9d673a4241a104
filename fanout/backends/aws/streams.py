"""Reading the table's DynamoDB stream shard by shard, for a poller standing in for Lambda's
stream event source: parent shards are drained before their children (a job's records move to
a child shard when its parent splits), and each shard's checkpoint is kept in the table.

Each consumer keeps checkpoints of its own, as each of Lambda's event source mappings on one
stream keeps its own position: the aggregator's under pk `STREAM`, another consumer's under
`STREAM#<consumer>` (the job-objects deleter's: `job_objects.CONSUMER`)."""

from __future__ import annotations

import time
from typing import Any

from fanout.backends.aws.clients import error_code, translated
from fanout.backends.aws.table import Table
from fanout.models import ChangeBatch

CHECKPOINT_TTL = 2 * 24 * 3600  # stream records live 24 hours; their shards' checkpoints longer
# A checkpoint is written at most this often a shard: after a crash, records read since are read
# again, which the aggregator's sequence-number condition makes harmless.
CHECKPOINT_EVERY = 1.0
# New shards appear when a shard splits or rolls over (about every four hours on AWS).
SHARDS_EVERY = 10.0
EXPIRED = {"ExpiredIteratorException", "TrimmedDataAccessException"}
CHECKPOINTS = "STREAM"  # the partition key of the aggregator's checkpoints


class DynamoStreamReader:
    def __init__(self, table: Table, client: Any, consumer: str = "") -> None:
        self.table = table
        self.client = client
        self.partition = f"{CHECKPOINTS}#{consumer}" if consumer else CHECKPOINTS
        self.stream_arn: str | None = None
        self.positions: dict[str, str] = {}  # shard -> last committed sequence number
        self.finished: set[str] = set()  # closed shards read to their end
        self.iterators: dict[str, str] = {}  # shard -> iterator just after its position
        self.unread: dict[str, str | None] = {}  # shard -> iterator after a batch not committed
        self.loaded = False
        self.saved_at: dict[str, float] = {}
        self.shards: list[dict[str, Any]] = []
        self.shards_at = -SHARDS_EVERY

    def read(self, limit: int) -> list[ChangeBatch]:
        self._load()
        shards = self._shards()
        known = {shard["ShardId"] for shard in shards}
        batches = []
        for shard in shards:
            shard_id, parent = shard["ShardId"], shard.get("ParentShardId")
            if shard_id in self.finished or (parent in known and parent not in self.finished):
                continue
            records, after = self._records(shard_id, limit)
            if records:
                self.unread[shard_id] = after
                position = records[-1]["dynamodb"]["SequenceNumber"]
                batches.append(ChangeBatch(shard_id, records, position))
            elif after is None:
                self._finish(shard_id)
            else:
                self.iterators[shard_id] = after
        return batches

    def commit(self, batch: ChangeBatch) -> None:
        shard_id = batch.source
        after = self.unread.pop(shard_id, None)
        self.positions[shard_id] = batch.position
        if after is None:
            self.iterators.pop(shard_id, None)
        else:
            self.iterators[shard_id] = after
        # A checkpoint write is itself a stream record: write one only for batches that held
        # other records, or the poller would chase its own checkpoints forever (and two
        # consumers each other's).
        due = time.monotonic() >= self.saved_at.get(shard_id, 0.0) + CHECKPOINT_EVERY
        if due and not all(_is_checkpoint(r) for r in batch.records):
            self._save(shard_id, finished=False)

    def _records(self, shard_id: str, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        iterator = self.iterators.pop(shard_id, None)
        if shard_id in self.unread:  # the last batch was not committed: read it again
            self.unread.pop(shard_id)
            iterator = None
        for _ in range(2):
            iterator = iterator or self._iterator(shard_id)
            try:
                response = self.client.get_records(ShardIterator=iterator, Limit=limit)
            except Exception as error:
                if error_code(error) not in EXPIRED:
                    raise
                iterator = None
                continue
            return response.get("Records", []), response.get("NextShardIterator")
        return [], None

    def _iterator(self, shard_id: str) -> str:
        position = self.positions.get(shard_id)
        where = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": position}
            if position
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        with translated(f"opening stream shard {shard_id}"):
            response = self.client.get_shard_iterator(
                StreamArn=self._arn(), ShardId=shard_id, **where
            )
        iterator: str = response["ShardIterator"]
        return iterator

    def _shards(self) -> list[dict[str, Any]]:
        """Every shard, parents listed before their children, described again every
        `SHARDS_EVERY` seconds or when a shard has ended."""
        if time.monotonic() < self.shards_at + SHARDS_EVERY:
            return self.shards
        shards: list[dict[str, Any]] = []
        request: dict[str, Any] = {"StreamArn": self._arn()}
        while True:
            with translated("describing the stream"):
                description = self.client.describe_stream(**request)["StreamDescription"]
            shards += description.get("Shards", [])
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            request["ExclusiveStartShardId"] = last
        by_id = {shard["ShardId"]: shard for shard in shards}

        def depth(shard: dict[str, Any]) -> int:
            parent = by_id.get(shard.get("ParentShardId", ""))
            return 0 if parent is None else 1 + depth(parent)

        self.shards, self.shards_at = sorted(shards, key=depth), time.monotonic()
        return self.shards

    def _arn(self) -> str:
        if self.stream_arn is None:
            with translated(f"describing table {self.table.name}"):
                table = self.table.client.describe_table(TableName=self.table.name)["Table"]
            self.stream_arn = table["LatestStreamArn"]
        return self.stream_arn

    def _finish(self, shard_id: str) -> None:
        self.finished.add(shard_id)
        self.iterators.pop(shard_id, None)
        self.shards_at = -SHARDS_EVERY  # its children may be new
        self._save(shard_id, finished=True)

    def _save(self, shard_id: str, finished: bool) -> None:
        item: dict[str, Any] = {
            "pk": self.partition,
            "sk": f"SHARD#{shard_id}",
            "finished": finished,
            "expires_at": int(time.time() + CHECKPOINT_TTL),
        }
        if shard_id in self.positions:
            item["position"] = self.positions[shard_id]
        self.table.put(item)
        self.saved_at[shard_id] = time.monotonic()

    def _load(self) -> None:
        if self.loaded:
            return
        for item in self.table.query("pk = :stream", {":stream": self.partition}, consistent=True):
            shard_id = str(item["sk"]).removeprefix("SHARD#")
            if item.get("position"):
                self.positions[shard_id] = item["position"]
            if item.get("finished"):
                self.finished.add(shard_id)
        self.loaded = True


def _is_checkpoint(record: dict[str, Any]) -> bool:
    """A record of some consumer's checkpoint item."""
    pk: str = record.get("dynamodb", {}).get("Keys", {}).get("pk", {}).get("S", "")
    return pk == CHECKPOINTS or pk.startswith(f"{CHECKPOINTS}#")
