"""Count every AWS request a boto3 client makes, by phase, service and operation, with the
DynamoDB capacity each one consumes.

Requests are counted with botocore's event hooks on the clients the backend is given
(`before-parameter-build` sees the parameters, `after-call` the response, errors included).

moto reports a fixed `ConsumedCapacity` whatever the item's size (1.0 for a 5 KB put), so the
capacity is computed here from item sizes with DynamoDB's published rules instead
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html):
a write costs one WRU per started KB of the larger of the item before and after it (a failed
condition still costs the item's size), plus one per started KB for each global secondary index
entry it puts or deletes; a read costs one RRU per started 4 KB (a query: of all the items it
returned together), half that when eventually consistent. The item before and after a write are
read with a second, uncounted client.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from fanout import pricing

Key = tuple[str, str, str]  # phase, service, operation
KB = 1024
READ_UNIT = 4 * KB
PHASE: contextvars.ContextVar[str] = contextvars.ContextVar("phase", default="setup")


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Attribute the requests made inside to `name` (a Lambda function, or an event source)."""
    token = PHASE.set(name)
    try:
        yield
    finally:
        PHASE.reset(token)


@dataclass
class Meter:
    requests: Counter[Key] = field(default_factory=Counter)  # billed requests
    calls: Counter[Key] = field(default_factory=Counter)  # API calls made
    capacity: dict[Key, pricing.Capacity] = field(
        default_factory=lambda: defaultdict(pricing.Capacity)
    )
    enabled: bool = True  # off: nothing is counted (a warm-up)
    idle_polls: int = 0  # ReceiveMessage calls that found nothing: a standing cost, not per item
    # (phase, service, operation, what it named: index, queue URL or object key), for the check
    # that each function's role allows what it does (tests/aws/test_policies_on_moto.py).
    touched: set[tuple[str, str, str, str]] = field(default_factory=set)
    # Seconds each Lambda invocation of a function ran (its billed duration, at 1 ms steps).
    durations: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    stored: dict[str, int] = field(default_factory=dict)  # S3 objects put (and not deleted)

    def invoked(self, function: str) -> None:
        """One Lambda invocation of `function` (one handler call on one batch)."""
        if not self.enabled:
            return
        self.requests[function, "lambda", "Invoke"] += 1
        self.calls[function, "lambda", "Invoke"] += 1

    @contextmanager
    def invocation(self, function: str) -> Iterator[None]:
        """One invocation of `function`, timed, its requests attributed to it."""
        self.invoked(function)
        started = time.perf_counter()
        try:
            with phase(function):
                yield
        finally:
            if self.enabled:
                self.durations[function].append(time.perf_counter() - started)

    def attach(
        self,
        client: Any,
        shadow: Any = None,
        indexes: Mapping[str, Sequence[str]] = {},
        projections: Mapping[str, str] = {},
    ) -> None:
        """Count `client`'s requests. For DynamoDB, `shadow` (a client on the same endpoint,
        not attached) reads the items a write changes, `indexes` names each global secondary
        index's key attributes and `projections` its projection (`ALL` or `KEYS_ONLY`)."""
        service = client.meta.service_model.service_name
        sizer = _WriteSizer(shadow, indexes, projections) if service == "dynamodb" else None

        def before(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
            if not self.enabled:
                return
            context["bench_params"] = params
            body = params.get("Body")
            context["bench_size"] = len(body) if isinstance(body, bytes | str) else 0
            if sizer is not None:
                context["bench_before"] = sizer.before(model.name, params)

        def after(
            http_response: Any,
            parsed: dict[str, Any],
            model: Any,
            context: dict[str, Any],
            **_: Any,
        ) -> None:
            if not self.enabled:
                return
            key = (PHASE.get(), service, model.name)
            params = context.get("bench_params", {})
            self.touched.add((*key, _target(params)))
            if service == "sqs" and model.name == "ReceiveMessage" and not parsed.get("Messages"):
                self.idle_polls += 1
                return
            self.calls[key] += 1
            if service == "s3" and http_response.status_code < 300:
                self._store(model.name, params, context.get("bench_size", 0))
            self.requests[key] += _billed(service, model.name, params, parsed)
            ok = http_response.status_code < 300
            if sizer is not None:
                before_items = context.get("bench_before", [])
                self.capacity[key] += sizer.after(model.name, params, parsed, before_items, ok)

        client.meta.events.register(f"before-parameter-build.{service}.*", before)
        client.meta.events.register(f"after-call.{service}.*", after)

    def _store(self, operation: str, params: Mapping[str, Any], size: int) -> None:
        key = f"{params.get('Bucket')}/{params.get('Key')}"
        if operation == "PutObject":
            self.stored[key] = size
        elif operation == "DeleteObject":
            self.stored.pop(key, None)

    def by_operation(self) -> dict[tuple[str, str], int]:
        totals: Counter[tuple[str, str]] = Counter()
        for (_, service, operation), count in self.requests.items():
            totals[service, operation] += count
        return dict(totals)


def _target(params: Mapping[str, Any]) -> str:
    """The index, queue or object a request names, beyond its table, stream or bucket."""
    for name in ("IndexName", "QueueUrl", "Key"):
        if isinstance(params.get(name), str):
            return str(params[name])
    return ""


def _billed(
    service: str, operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any]
) -> int:
    """SQS bills each started 64 KB of a request's payload as one request."""
    if service != "sqs":
        return 1
    bodies = [params.get("MessageBody", "")]
    bodies += [entry.get("MessageBody", "") for entry in params.get("Entries", [])]
    bodies += [message.get("Body", "") for message in parsed.get("Messages", [])]
    return pricing.sqs_requests(sum(len(body.encode()) for body in bodies))


# -- DynamoDB item sizes and capacity ------------------------------------------------------------


def value_size(value: Mapping[str, Any]) -> int:
    [(kind, raw)] = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "B":
        return len(raw)
    if kind == "N":
        return number_size(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in raw.items())
    if kind == "SS":
        return sum(len(s.encode()) for s in raw)
    if kind == "NS":
        return sum(number_size(n) for n in raw)
    if kind == "BS":
        return sum(len(b) for b in raw)
    raise TypeError(f"unknown DynamoDB type {kind}")


def number_size(raw: str) -> int:
    """About one byte per two significant digits, plus one."""
    digits = Decimal(raw).normalize().as_tuple().digits
    return math.ceil(len(digits) / 2) + 1


def item_size(item: Mapping[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / KB))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / READ_UNIT))
    return units if consistent else units / 2


Item = dict[str, Any]


class _WriteSizer:
    def __init__(
        self, shadow: Any, indexes: Mapping[str, Sequence[str]], projections: Mapping[str, str]
    ) -> None:
        self.shadow = shadow
        self.indexes = indexes
        self.projections = projections

    def before(
        self, operation: str, params: Mapping[str, Any]
    ) -> list[tuple[str, Item, Item | None]]:
        """(table, key, item before) of each item the write may change."""
        keys = [(table, key) for table, key, _ in _written(operation, params)]
        return [(table, key, self._read(table, key)) for table, key in keys]

    def after(
        self,
        operation: str,
        params: Mapping[str, Any],
        parsed: Mapping[str, Any],
        before: list[tuple[str, Item, Item | None]],
        ok: bool,
    ) -> pricing.Capacity:
        if operation in ("GetItem",):
            size = item_size(parsed.get("Item"))
            return pricing.Capacity(read_units(size, bool(params.get("ConsistentRead"))))
        if operation == "BatchGetItem":
            units = 0.0
            for table, request in params.get("RequestItems", {}).items():
                found = parsed.get("Responses", {}).get(table, [])
                sizes = [item_size(item) for item in found]
                sizes += [0] * max(0, len(request["Keys"]) - len(found))
                units += sum(read_units(s, bool(request.get("ConsistentRead"))) for s in sizes)
            return pricing.Capacity(units)
        if operation in ("Query", "Scan"):
            size = sum(item_size(item) for item in parsed.get("Items", []))
            consistent = bool(params.get("ConsistentRead")) and "IndexName" not in params
            return pricing.Capacity(read_units(size, consistent))
        if operation not in pricing.DYNAMODB_WRITES:
            return pricing.Capacity()
        attempted = {_key_text(key): put for _, key, put in _written(operation, params)}
        units = 0
        for table, key, old in before:
            put = attempted[_key_text(key)]
            if operation == "UpdateItem" or operation == "TransactWriteItems":
                new = self._read(table, key) if ok else old
            else:
                new = put if ok else old  # a delete puts None
            units += write_units(max(item_size(old), item_size(put), item_size(new)))
            if ok:
                units += self._index_units(old, new)
        factor = 2 if operation == "TransactWriteItems" else 1
        return pricing.Capacity(write_units=units * factor)

    def _index_units(self, old: Item | None, new: Item | None) -> int:
        """A write puts, rewrites or deletes an index entry when it changes what the index
        holds: its keys, or (ALL) any attribute. The entry is the item (ALL), or the table's
        and the index's keys (KEYS_ONLY)."""
        units = 0
        for name, keys in self.indexes.items():
            held = _held(self.projections.get(name, "ALL"), keys)
            old_entry, new_entry = _entry(old, keys, held), _entry(new, keys, held)
            if old_entry == new_entry:
                continue
            if old_entry is not None and new_entry is not None:
                units += write_units(item_size(new_entry))
                if _index_key(old, keys) != _index_key(new, keys):  # moved: delete the old one
                    units += write_units(item_size(old_entry))
            elif old_entry is not None:
                units += write_units(item_size(old_entry))
            elif new_entry is not None:
                units += write_units(item_size(new_entry))
        return units

    def _read(self, table: str, key: Item) -> Item | None:
        found: Item | None = self.shadow.get_item(
            TableName=table, Key=key, ConsistentRead=True
        ).get("Item")
        return found


def _written(operation: str, params: Mapping[str, Any]) -> list[tuple[str, Item, Item | None]]:
    """(table, key, item to put or None) of each item a write names."""
    if operation == "PutItem":
        return [(params["TableName"], _key_of(params["Item"]), params["Item"])]
    if operation in ("UpdateItem", "DeleteItem"):
        return [(params["TableName"], params["Key"], None)]
    if operation == "BatchWriteItem":
        written = []
        for table, requests in params["RequestItems"].items():
            for request in requests:
                if "PutRequest" in request:
                    item = request["PutRequest"]["Item"]
                    written.append((table, _key_of(item), item))
                else:
                    written.append((table, request["DeleteRequest"]["Key"], None))
        return written
    if operation == "TransactWriteItems":
        written = []
        for entry in params["TransactItems"]:
            [(kind, request)] = entry.items()
            if kind == "Put":
                written.append((request["TableName"], _key_of(request["Item"]), request["Item"]))
            elif kind in ("Update", "Delete"):
                written.append((request["TableName"], request["Key"], None))
        return written
    return []


def _held(projection: str, keys: Sequence[str]) -> tuple[str, ...] | None:
    """The attributes an index entry holds; None for every one (ALL)."""
    return None if projection == "ALL" else ("pk", "sk", *keys)


def _entry(item: Item | None, keys: Sequence[str], held: tuple[str, ...] | None) -> Item | None:
    """The index entry `item` makes, or None if the index does not hold it (sparse)."""
    if _index_key(item, keys) is None or item is None:
        return None
    return item if held is None else {name: item[name] for name in held if name in item}


def _index_key(item: Item | None, keys: Sequence[str]) -> list[Any] | None:
    if item is None or not all(k in item for k in keys):
        return None
    return [item[k] for k in keys]


def _key_of(item: Mapping[str, Any]) -> Item:
    return {name: item[name] for name in ("pk", "sk") if name in item}


def _key_text(key: Mapping[str, Any]) -> str:
    return repr(sorted((name, repr(value)) for name, value in key.items()))
