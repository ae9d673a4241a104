"""Chunks on DynamoDB (the `ChunkStore` port): starting one, recording its result (the stream
aggregator, `fanin.py`, counts it), and splitting a dead letter in two."""

from __future__ import annotations

import time
import uuid

from pydantic_core import from_json, to_json

from fanout.backends.aws import expiry
from fanout.backends.aws.chunk_items import INLINE_RESULT_LIMIT, DynamoChunkItems
from fanout.backends.aws.job_items import (
    ACTIVE_VALUES,
    CHUNK_FOLLOW_UPS,
    IS_ACTIVE,
    IS_LIVE,
    LIVE_VALUES,
    STATE,
    STATUS,
    merged,
)
from fanout.backends.aws.table import INLINE_LIMIT, Item, chunk_key, job_key, result_key
from fanout.models import ChunkRef, ChunkResult, JobStatus, RecordOutcome


class DynamoChunks(DynamoChunkItems):
    def start_chunk(self, chunk: ChunkRef, now: float) -> bytes | None:
        # Timeline: a redelivery finds the chunk running and runs it again (so does a re-sent
        # duplicate: wasted work, counted once); once it is recorded or split, the condition
        # fails and the message is just deleted.
        old = self.table.update(
            chunk_key(chunk),
            "SET #state = :running_chunk, started_at = :now",
            condition=IS_LIVE,
            names=STATE,
            values={":now": now, **LIVE_VALUES},
            returns="ALL_OLD",
        )
        if old is None:
            return None
        first_start = old["state"] == "ready"
        job = self.table.update(
            job_key(chunk.job_id),
            "SET #status = :running, status_id = :status_id, updated_at = :now,"
            " started_at = if_not_exists(started_at, :now) ADD running :items",
            condition=IS_ACTIVE,
            names=STATUS,
            values={
                ":status_id": f"{JobStatus.RUNNING.value}#{chunk.job_id}",
                ":now": now,
                ":items": chunk.size if first_start else 0,
                **ACTIVE_VALUES,
            },
        )
        if job is None:
            return None
        return self._items(old)

    def record_chunk_result(
        self, chunk: ChunkRef, result: ChunkResult, receipt: str | None = None
    ) -> RecordOutcome:
        """Put the result item; the stream aggregator counts it. Its key is the chunk's, shared
        with a split's tombstone, so a chunk is either recorded or split, never both."""
        found = {
            item["sk"]: item
            for item in self.table.batch_get([job_key(chunk.job_id), chunk_key(chunk)])
        }
        job, live = found.get("JOB"), found.get(chunk_key(chunk)["sk"])
        if job is None or JobStatus(job["status"]).terminal or live is None:
            return RecordOutcome(counted=False)
        if live["state"] not in ("ready", "running"):
            return RecordOutcome(counted=False)
        item: Item = {
            **result_key(chunk),
            "kind": "result",
            "start": chunk.start,
            "end": chunk.end,
            "succeeded": result.succeeded,
            "failed": result.failed,
            # The aggregator frees these items from the job's running count.
            "was_running": chunk.size if live["state"] == "running" else 0,
            # ...and adds what running the chunk used to the job's usage.
            "attempts": result.attempts,
            "seconds": result.seconds,
            "requests": merged(result.requests, CHUNK_FOLLOW_UPS),
            "expires_at": expiry.of_running_job(job, time.time(), self.retention),
        }
        inline_limit = INLINE_LIMIT if self.blobs.bucket is None else INLINE_RESULT_LIMIT
        if len(result.lines) > inline_limit:
            # A key per attempt: two deliveries racing here must not overwrite the lines of the
            # one whose result item is put (a task may answer differently each time).
            attempt = uuid.uuid4().hex
            item["lines_key"] = f"results/{chunk.job_id}/{chunk.start}-{chunk.end}/{attempt}.jsonl"
            self.blobs.put(item["lines_key"], result.lines)
        else:
            item["lines"] = result.lines
        counted = self.table.put(item, "attribute_not_exists(sk)")
        if counted or self._recorded(chunk):
            # Done whether or not this call put the result: a crash between the two writes
            # must not leave a recorded chunk runnable.
            # A chunk with failed items keeps its input (inline; an S3 range stays anyway): a
            # redrive runs those items again.
            drop = " REMOVE #items" if result.failed == 0 else ""
            self.table.update(
                chunk_key(chunk),
                f"SET #state = :done{drop}",
                condition=IS_LIVE,
                names={**STATE, "#items": "items"} if drop else STATE,
                values={":done": "done", **LIVE_VALUES},
            )
        return RecordOutcome(counted=counted)

    def _recorded(self, chunk: ChunkRef) -> bool:
        existing = self.table.get(result_key(chunk))
        return existing is not None and existing["kind"] == "result"

    def split_chunk(self, chunk: ChunkRef) -> list[ChunkRef]:
        """Tombstone the parent's result key, write the halves, then mark the parent split: each
        step is safe to repeat, so a dead letter redelivered after a crash finishes the split."""
        if chunk.size < 2:
            return []
        job = self.table.get(job_key(chunk.job_id))
        if job is None or JobStatus(job["status"]).terminal:
            return []
        expires = expiry.of_running_job(job, time.time(), self.retention)
        tombstone = {
            **result_key(chunk),
            "kind": "split",
            "start": chunk.start,
            "end": chunk.end,
            "expires_at": int(expires),
        }
        if not self.table.put(tombstone, "attribute_not_exists(sk)"):
            existing = self.table.get(result_key(chunk))
            if existing is None or existing["kind"] != "split":
                return []  # recorded first
        parent = self.table.get(chunk_key(chunk))
        if parent is None or parent["state"] not in ("ready", "running"):
            return []  # split already
        items = from_json(self._items(parent))
        middle = chunk.size // 2
        halves = [
            (ChunkRef(chunk.job_id, chunk.start, chunk.start + middle), items[:middle]),
            (ChunkRef(chunk.job_id, chunk.start + middle, chunk.end), items[middle:]),
        ]
        for half, part in halves:
            half_item = self._chunk_item(
                chunk.job_id, half.start, half.end, to_json(part), expires, half=True
            )
            # Never overwrite a half that a reconciler may already have sent and run.
            self.table.put(half_item, "attribute_not_exists(sk)")
        old = self.table.update(
            chunk_key(chunk),
            "SET #state = :split REMOVE #items",
            condition=IS_LIVE,
            names={**STATE, "#items": "items"},
            values={":split": "split", **LIVE_VALUES},
            returns="ALL_OLD",
        )
        if old is None:
            return []
        self.table.update(
            job_key(chunk.job_id),
            "SET updated_at = :now ADD in_flight :one, running :freed",
            values={
                ":now": time.time(),
                ":one": 1,  # two halves in flight where the parent was
                ":freed": -chunk.size if old["state"] == "running" else 0,
            },
        )
        return [half for half, _ in halves]
