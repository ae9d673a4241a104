"""How the store writes chunk items and result items: a chunk's input inline, in its own S3
object, or as a byte range of the job's one input object; result lines inline up to a few KB,
else in S3. The base of the store's parts (`store.py`), holding the table, the bucket and the
retention they all write with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fanout.backends.aws.blobs import S3Blobs
from fanout.backends.aws.table import INLINE_LIMIT, Item, Table, chunk_sk, result_sk
from fanout.models import ChunkInput, JobId

# An S3 PUT costs as much as 8 write units ($0.005 per 1,000 against $0.625 per million, see
# fanout.pricing), and a ranged GET more than reading 4 KB from the table: result lines up to
# 7 KB are cheaper inline in their result item, larger ones cheaper as one object per chunk.
INLINE_RESULT_LIMIT = 7 * 1024


class DynamoChunkItems:
    """What every part of `DynamoJobStore` shares."""

    def __init__(self, table: Table, blobs: S3Blobs, retention_days: float) -> None:
        self.table = table
        self.blobs = blobs
        self.retention = retention_days * 86400
        # Plan pages never change (a redrive writes a new generation).
        self._plans: dict[tuple[str, int, int], list[tuple[int, int]]] = {}

    def _chunk_items(
        self, job_id: JobId, chunks: Sequence[ChunkInput], expires: float
    ) -> list[Item]:
        """With a bucket, every chunk's input goes into one object per job (one PUT) and each
        chunk item keeps its byte range: a chunk item then stays ~150 bytes, so each write that
        moves its state costs one write unit, however large the input."""
        if self.blobs.bucket is None or not chunks:
            return [
                self._chunk_item(job_id, c.start, c.end, c.items_json, expires, ordinal=i)
                for i, c in enumerate(chunks)
            ]
        key = f"inputs/{job_id}.json"
        self.blobs.put(key, b"".join(c.items_json for c in chunks))
        items, at = [], 0
        for i, c in enumerate(chunks):
            where = {"items_key": key, "items_at": at, "items_length": len(c.items_json)}
            items.append(self._chunk_state(job_id, c.start, c.end, expires, ordinal=i, **where))
            at += len(c.items_json)
        return items

    def _chunk_item(
        self, job_id: str, start: int, end: int, items: bytes, expires: float, **extra: Any
    ) -> Item:
        """A chunk item with its input: in an object of its own when there is a bucket, else
        inline up to DynamoDB's item size."""
        item = self._chunk_state(job_id, start, end, expires, **extra)
        if self.blobs.bucket is not None or len(items) > INLINE_LIMIT:
            item["items_key"] = f"inputs/{job_id}/{start}-{end}.json"
            self.blobs.put(item["items_key"], items)
        else:
            item["items"] = items
        return item

    def _chunk_state(self, job_id: str, start: int, end: int, expires: float, **extra: Any) -> Item:
        return {
            "pk": f"JOB#{job_id}",
            "sk": chunk_sk(start, end),
            "kind": "chunk",
            "start": start,
            "end": end,
            "state": "ready",
            "expires_at": int(expires),
            **extra,
        }

    def _items(self, chunk_item: Item) -> bytes:
        if "items" in chunk_item:
            return bytes(chunk_item["items"])
        if "items_at" in chunk_item:  # a range of the job's one input object
            return self.blobs.get(
                chunk_item["items_key"], chunk_item["items_at"], chunk_item["items_length"]
            )
        return self.blobs.get(chunk_item["items_key"])

    def chunk_input(self, chunk_item: Item) -> bytes:
        return self._items(chunk_item)

    def chunk_item(self, job_id: str, start: int, end: int, items: bytes, expires: float) -> Item:
        return self._chunk_item(job_id, start, end, items, expires)

    def carried_result(
        self, job_id: JobId, start: int, end: int, lines: bytes, expires: int
    ) -> Item:
        """A result a redrive keeps from an earlier run: `carried`, so it is not counted again."""
        item: Item = {
            "pk": f"JOB#{job_id}",
            "sk": result_sk(start, end),
            "kind": "result",
            "carried": True,
            "start": start,
            "end": end,
            "succeeded": end - start,
            "failed": 0,
            "expires_at": expires,
        }
        inline_limit = INLINE_LIMIT if self.blobs.bucket is None else INLINE_RESULT_LIMIT
        if len(lines) > inline_limit:
            item["lines_key"] = f"results/{job_id}/{start}-{end}/carried.jsonl"
            self.blobs.put(item["lines_key"], lines)
        else:
            item["lines"] = lines
        return item
