"""The fan-in on AWS: count chunk results from the table's DynamoDB stream.

Only an INSERT of a result item counts: a chunk's result is put with `attribute_not_exists`, so
a redelivered chunk writes nothing (AWS) or an identical MODIFY (moto), and a split's tombstone
is an INSERT of another kind.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from fanout.backends.aws.job_items import ACTIVE_VALUES, IS_ACTIVE, STATUS, add_requests
from fanout.backends.aws.store import DynamoJobStore
from fanout.backends.aws.table import Table, chunk_of, decode_item, job_key
from fanout.models import ChunkRef, Counted, RecordOutcome

SEQUENCE_DIGITS = 40  # stream sequence numbers are 21 to 40 digits; padded, they sort as text


class DynamoFanIn:
    def __init__(self, table: Table, store: DynamoJobStore) -> None:
        self.table = table
        self.store = store

    def count(self, records: Sequence[Mapping[str, Any]]) -> list[Counted]:
        counted = []
        for record in records:
            change = record.get("dynamodb", {})
            image = change.get("NewImage") or {}
            if record.get("eventName") != "INSERT" or image.get("kind") != {"S": "result"}:
                continue
            if "carried" in image:  # a redrive's copy of a result already counted
                continue
            result = decode_item(image)
            chunk = chunk_of(result)
            outcome = self._count(chunk, result, change["SequenceNumber"].zfill(SEQUENCE_DIGITS))
            if outcome is not None:
                counted.append(Counted(chunk, outcome))
        return counted

    def _count(
        self, chunk: ChunkRef, result: dict[str, Any], sequence: str
    ) -> RecordOutcome | None:
        # Timeline of one job's results on the stream: every item of a job shares its partition
        # key, so its records arrive from one shard at a time (parents before children) in
        # sequence-number order. The job item keeps the last number it counted; a retried
        # batch brings records at or below it, and the condition refuses them. So each INSERT
        # moves the counters once, and exactly one count sees the job complete.
        not_counted_yet = "(attribute_not_exists(counted_seq) OR counted_seq < :seq)"
        names = dict(STATUS)
        values: dict[str, Any] = {}
        used = add_requests(result.get("requests") or {}, names, values)
        job = self.table.update(
            job_key(chunk.job_id),
            "SET counted_seq = :seq, updated_at = :now"
            " ADD succeeded :succeeded, failed :failed, running :freed, in_flight :minus_one,"
            " usage_chunks :one, usage_attempts :attempts, usage_seconds :seconds"
            + "".join(f", {clause}" for clause in used),
            condition=f"{IS_ACTIVE} AND {not_counted_yet}",
            names=names,
            values=values
            | {
                ":seq": sequence,
                ":now": time.time(),
                ":succeeded": result["succeeded"],
                ":failed": result["failed"],
                ":freed": -result.get("was_running", 0),
                ":minus_one": -1,
                ":one": 1,
                ":attempts": result.get("attempts", 0),
                ":seconds": result.get("seconds", 0.0),
                **ACTIVE_VALUES,
            },
            returns="ALL_NEW",
        )
        if job is None:
            return None  # counted before, or the job has ended
        complete = job["succeeded"] + job["failed"] >= job["total"]
        released = [] if complete else self.store.release(job)
        return RecordOutcome(counted=True, released=released, complete=complete)
