"""Counting the billable requests each job makes on AWS, as it makes them.

The meter listens to botocore's events on the backend's clients. Nothing about a request
changes except that DynamoDB is asked to `ReturnConsumedCapacity`, so the units counted are the
ones billed. A request made inside `scope()` counts into that scope's tally, by the kinds of
`fanout.pricing.USAGE_PRICES`; the service opens a scope around a job's submit, each chunk's
run and the job's finalize, and the store adds the tally to the job with the write that records
that step (the job's creation, the chunk's result, the terminal transition).
"""

from __future__ import annotations

import contextvars
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fanout import pricing

Tally = defaultdict[str, float]
TALLY: contextvars.ContextVar[Tally | None] = contextvars.ContextVar("tally", default=None)
# The DynamoDB operations that can report the capacity they consumed.
REPORTING = frozenset(
    {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem"}
    | {"BatchWriteItem", "TransactGetItems", "TransactWriteItems"}
)


@contextmanager
def scope() -> Iterator[Tally]:
    tally: Tally = defaultdict(float)
    token = TALLY.set(tally)
    try:
        yield tally
    finally:
        TALLY.reset(token)


def attach(client: Any) -> None:
    """Count `client`'s requests into the current scope, if any."""
    service = client.meta.service_model.service_name
    events = client.meta.events
    # Unique ids: attaching to the same client twice must not count its requests twice.
    if service == "dynamodb":
        events.register(
            "before-parameter-build.dynamodb.*", _report_capacity, unique_id="fanout-capacity"
        )
    events.register(f"after-call.{service}.*", _count, unique_id=f"fanout-meter-{service}")


def _report_capacity(params: dict[str, Any], model: Any, **_: Any) -> None:
    if model.name in REPORTING:
        params.setdefault("ReturnConsumedCapacity", "TOTAL")


def _count(parsed: dict[str, Any], model: Any, **_: Any) -> None:
    tally = TALLY.get()
    if tally is None:
        return
    service = model.service_model.service_name
    if service == "dynamodb":
        reports = parsed.get("ConsumedCapacity") or []
        for report in [reports] if isinstance(reports, dict) else reports:
            used = pricing.consumed(model.name, report)
            tally["dynamodb read units"] += used.read_units
            tally["dynamodb write units"] += used.write_units
    elif service == "sqs":
        tally["sqs requests"] += 1  # chunk messages are far below SQS's 64 KB billing unit
    elif service == "s3" and model.name not in pricing.S3_FREE:
        put = model.name in pricing.S3_PUT_CLASS
        tally["s3 put requests" if put else "s3 get requests"] += 1
