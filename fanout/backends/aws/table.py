"""The one DynamoDB table: keys of each kind of item, plain-Python items, and requests that
translate the vendor's errors.

Single-table design (every item of a job shares its partition key, so a job's results come back
in order from one Query and its stream records from one shard at a time):

| item | pk | sk |
| --- | --- | --- |
| job (counters, window, outbox event) | `JOB#<id>` | `JOB` |
| chunk boundaries, 8,192 a page | `JOB#<id>` | `PLAN#<page>` |
| chunk input and state | `JOB#<id>` | `CHUNK#<start>#<end>` |
| chunk result (or a split's tombstone) | `JOB#<id>` | `RESULT#<start>#<end>` |
| webhook event id -> job | `EVENT#<event id>` | `EVENT` |
| idempotency key | `IDEM#<tenant>#<key>` | `IDEM` |
| stream checkpoint | `STREAM` | `SHARD#<shard id>` |
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from fanout.backends.aws.clients import condition_failed, translated
from fanout.errors import BackendError
from fanout.models import ChunkRef, JobId

# DynamoDB's item limit is 400 KB including attribute names; larger inputs and results go to S3.
INLINE_LIMIT = 350_000
BATCH_WRITE_LIMIT = 25  # BatchWriteItem's limit (moto accepts 26; AWS does not)
BATCH_GET_LIMIT = 100  # BatchGetItem's limit
Item = dict[str, Any]


def job_key(job_id: str) -> Item:
    return {"pk": f"JOB#{job_id}", "sk": "JOB"}


def plan_key(job_id: str, page: int) -> Item:
    return {"pk": f"JOB#{job_id}", "sk": f"PLAN#{page:06d}"}


# A plan page's key in generation `generation` (0: the original chunks; then each redrive's).
def plan_sk(generation: int, page: int) -> str:
    return f"PLAN#{page:06d}" if generation == 0 else f"PLAN#R{generation:04d}#{page:06d}"


def chunk_sk(start: int, end: int) -> str:
    return f"CHUNK#{start:010d}#{end:010d}"


def chunk_key(chunk: ChunkRef) -> Item:
    return {"pk": f"JOB#{chunk.job_id}", "sk": chunk_sk(chunk.start, chunk.end)}


def result_sk(start: int, end: int) -> str:
    return f"RESULT#{start:010d}#{end:010d}"


def result_key(chunk: ChunkRef) -> Item:
    return {"pk": f"JOB#{chunk.job_id}", "sk": result_sk(chunk.start, chunk.end)}


def chunk_of(item: Mapping[str, Any]) -> ChunkRef:
    """The chunk a chunk or result item is about."""
    return ChunkRef(
        JobId(str(item["pk"]).removeprefix("JOB#")), int(item["start"]), int(item["end"])
    )


def encode(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"B": bytes(value)}
    if isinstance(value, list | tuple):
        return {"L": [encode(v) for v in value]}
    if isinstance(value, dict):
        return {"M": encode_item(value)}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def decode(value: Mapping[str, Any]) -> Any:
    [(kind, raw)] = value.items()
    if kind == "N":
        return float(raw) if any(c in raw for c in ".eE") else int(raw)
    if kind == "B" and isinstance(raw, str):
        # A stream record in a Lambda event is JSON: its binary values come base64-encoded.
        return base64.b64decode(raw)
    if kind in ("S", "B", "BOOL"):
        return raw
    if kind == "NULL":
        return None
    if kind == "L":
        return [decode(v) for v in raw]
    if kind == "M":
        return decode_item(raw)
    if kind == "SS":
        return set(raw)
    raise TypeError(f"unexpected DynamoDB type {kind}")


def encode_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: encode(value) for name, value in item.items()}


def decode_item(item: Mapping[str, Any]) -> Item:
    return {name: decode(value) for name, value in item.items()}


def _expressions(condition: str | None, names: Item | None, values: Item | None) -> dict[str, Any]:
    """The optional condition and expression attributes of a write, as boto3 takes them."""
    parts: dict[str, Any] = {}
    if condition is not None:
        parts["ConditionExpression"] = condition
    if names:
        parts["ExpressionAttributeNames"] = names
    if values:
        parts["ExpressionAttributeValues"] = encode_item(values)
    return parts


class Table:
    """Requests on the table with plain-Python items. A failed condition is an answer (None or
    False), not an error; any other vendor error is raised as `BackendError`."""

    def __init__(self, name: str, client: Any) -> None:
        self.name = name
        self.client = client

    def get(self, key: Item, consistent: bool = True) -> Item | None:
        with translated(f"reading {key['sk']} of {key['pk']}"):
            response = self.client.get_item(
                TableName=self.name, Key=encode_item(key), ConsistentRead=consistent
            )
        item = response.get("Item")
        return None if item is None else decode_item(item)

    def put(
        self,
        item: Item,
        condition: str | None = None,
        names: Item | None = None,
        values: Item | None = None,
    ) -> bool:
        """Write `item`; False (nothing written) when `condition` does not hold."""
        request: dict[str, Any] = {"TableName": self.name, "Item": encode_item(item)}
        request.update(_expressions(condition, names, values))
        try:
            with translated(f"writing {item['sk']} of {item['pk']}"):
                self.client.put_item(**request)
        except BackendError as error:
            if condition_failed(error.__cause__ or error):
                return False
            raise
        return True

    def update(
        self,
        key: Item,
        update: str,
        condition: str | None = None,
        names: Item | None = None,
        values: Item | None = None,
        returns: str = "NONE",
    ) -> Item | None:
        """Apply `update` if `condition` holds and return the attributes asked for ({} for
        none); None when the condition does not hold."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "Key": encode_item(key),
            "UpdateExpression": update,
            "ReturnValues": returns,
            **_expressions(condition, names, values),
        }
        try:
            with translated(f"updating {key['sk']} of {key['pk']}"):
                response = self.client.update_item(**request)
        except BackendError as error:
            if condition_failed(error.__cause__ or error):
                return None
            raise
        return decode_item(response.get("Attributes", {}))

    def delete(self, key: Item, condition: str | None = None, names: Item | None = None) -> bool:
        request: dict[str, Any] = {"TableName": self.name, "Key": encode_item(key)}
        request.update(_expressions(condition, names, None))
        try:
            with translated(f"deleting {key['sk']} of {key['pk']}"):
                self.client.delete_item(**request)
        except BackendError as error:
            if condition_failed(error.__cause__ or error):
                return False
            raise
        return True

    def query(
        self,
        condition: str,
        values: Item,
        index: str | None = None,
        forward: bool = True,
        limit: int | None = None,
        consistent: bool = False,
        names: Item | None = None,
        page_size: int | None = None,
    ) -> Iterator[Item]:
        """Every matching item, page by page, until `limit` items came."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": encode_item(values),
            "ScanIndexForward": forward,
        }
        if index is not None:
            request["IndexName"] = index
        else:
            request["ConsistentRead"] = consistent
        if names:
            request["ExpressionAttributeNames"] = names
        if page_size or limit:
            request["Limit"] = page_size or limit
        given = 0
        while True:
            with translated(f"querying {index or 'the table'}"):
                response = self.client.query(**request)
            for item in response.get("Items", []):
                yield decode_item(item)
                given += 1
                if limit is not None and given >= limit:
                    return
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def count(
        self, condition: str, values: Item, index: str | None = None, names: Item | None = None
    ) -> int:
        """How many items match (Select=COUNT: the items are read, not returned)."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": encode_item(values),
            "Select": "COUNT",
        }
        if index is not None:
            request["IndexName"] = index
        if names:
            request["ExpressionAttributeNames"] = names
        total = 0
        while True:
            with translated(f"counting {index or 'the table'}"):
                response = self.client.query(**request)
            total += int(response.get("Count", 0))
            if "LastEvaluatedKey" not in response:
                return total
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def batch_write(self, items: Iterable[Item]) -> None:
        """Put every item, 25 a request, resending what DynamoDB left unprocessed."""
        batch: list[Item] = []
        for item in items:
            batch.append({"PutRequest": {"Item": encode_item(item)}})
            if len(batch) == BATCH_WRITE_LIMIT:
                self._write(batch)
                batch = []
        if batch:
            self._write(batch)

    def _write(self, requests: list[Item]) -> None:
        for attempt in range(10):
            with translated("writing a batch of items"):
                response = self.client.batch_write_item(RequestItems={self.name: requests})
            requests = response.get("UnprocessedItems", {}).get(self.name, [])
            if not requests:
                return
            time.sleep(min(2.0, 0.05 * 2**attempt))  # DynamoDB's advice: back off, then resend
        raise BackendError(f"{len(requests)} items stayed unprocessed after 10 batch writes")

    def batch_get(self, keys: list[Item], consistent: bool = True) -> list[Item]:
        """The items that exist among `keys`, in no particular order, 100 keys a request."""
        found: list[Item] = []
        for i in range(0, len(keys), BATCH_GET_LIMIT):
            pending: Item = {
                self.name: {
                    "Keys": [encode_item(k) for k in keys[i : i + BATCH_GET_LIMIT]],
                    "ConsistentRead": consistent,
                }
            }
            for attempt in range(10):
                with translated("reading a batch of items"):
                    response = self.client.batch_get_item(RequestItems=pending)
                found += [decode_item(item) for item in response["Responses"].get(self.name, [])]
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
                time.sleep(min(2.0, 0.05 * 2**attempt))
            else:
                raise BackendError("keys stayed unprocessed after 10 batch reads")
        return found
