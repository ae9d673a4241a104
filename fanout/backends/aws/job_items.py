"""The job item on DynamoDB: read into a `Job`, and the parts of the expressions that write it
(the status and chunk-state conditions, the request tallies)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic_core import from_json

from fanout.backends.aws.table import Item
from fanout.models import (
    DeliveryAttempt,
    DeliveryStatus,
    EventId,
    Job,
    JobId,
    JobOptions,
    JobStatus,
    TenantId,
    Usage,
    WebhookEvent,
)

PLAN_PAGE = 8192  # chunk boundaries a plan item holds (8 bytes each: 64 KB)


STATUS = {"#status": "status"}


IS_ACTIVE = "#status IN (:queued, :running)"


ACTIVE_VALUES: Item = {":queued": JobStatus.QUEUED.value, ":running": JobStatus.RUNNING.value}


# A chunk is ready (stored, maybe released), running, done (recorded) or split.
STATE = {"#state": "state"}


IS_LIVE = "#state IN (:ready, :running_chunk)"


LIVE_VALUES: Item = {":ready": "ready", ":running_chunk": "running"}


# A job item's count of each kind of request it made is the attribute "requests:<kind>".
REQUESTS = "requests:"


# The requests of each chunk that its worker does not see before the result is written: its
# message sent, received and deleted; its result put, its item marked done, its count.
CHUNK_FOLLOW_UPS = {"sqs requests": 3.0, "dynamodb write units": 3.0}


OWN_WRITE = {"dynamodb write units": 1.0}  # one write of a small item


def merged(*tallies: Mapping[str, float]) -> dict[str, float]:
    total: dict[str, float] = {}
    for tally in tallies:
        for kind, count in tally.items():
            total[kind] = total.get(kind, 0.0) + count
    return {kind: count for kind, count in total.items() if count}


def requests_attributes(*tallies: Mapping[str, float]) -> Item:
    return {f"{REQUESTS}{kind}": count for kind, count in merged(*tallies).items()}


def add_requests(requests: Mapping[str, float], names: Item, values: Item) -> list[str]:
    """`ADD` clauses adding each kind's count to the job item's, their names and values put
    into `names` and `values`."""
    clauses = []
    for i, (kind, count) in enumerate(sorted(requests.items())):
        names[f"#r{i}"], values[f":r{i}"] = f"{REQUESTS}{kind}", count
        clauses.append(f"#r{i} :r{i}")
    return clauses


def job_from_item(item: Item) -> Job:
    status = JobStatus(item["status"])
    options = from_json(item["options"])
    options["max_concurrency"] = item["max_concurrency"]  # the one place it is kept
    total, succeeded, failed = item["total"], item["succeeded"], item["failed"]
    # `running` is a counter moved by two separate writes; never show it out of bounds.
    running = 0 if status.terminal else max(0, min(item["running"], total - succeeded - failed))
    return Job(
        id=JobId(item["id"]),
        tenant=TenantId(item["tenant"]),
        task=item["task"],
        status=status,
        params=from_json(item["params"]),
        options=JobOptions(**options),
        webhook_url=item.get("webhook_url"),
        total=total,
        succeeded=succeeded,
        failed=failed,
        running=running,
        created_at=item["created_at"],
        started_at=item.get("started_at"),
        finished_at=item.get("finished_at"),
        reduce_value=from_json(item["reduce_value"]) if item.get("reduce_value") else None,
        error=item.get("error"),
        event=event_from_item(item) if "event_id" in item else None,
        usage=usage_from_item(item),
        redrive_count=item.get("redrive_count", 0),
        deadline=item.get("deadline"),
    )


def usage_from_item(item: Item) -> Usage:
    """The job item's usage counters (moved by each count of a chunk result, `fanin.py`)."""
    return Usage(
        chunks=item.get("usage_chunks", 0),
        attempts=item.get("usage_attempts", 0),
        worker_seconds=item.get("usage_seconds", 0.0),
        requests={
            name.removeprefix(REQUESTS): count
            for name, count in item.items()
            if name.startswith(REQUESTS)
        },
    )


def event_from_item(item: Item) -> WebhookEvent:
    return WebhookEvent(
        id=EventId(item["event_id"]),
        job_id=JobId(item["id"]),
        url=item["event_url"],
        secret=item["event_secret"],
        payload=item["event_payload"],
        status=DeliveryStatus(item["event_status"]),
        attempts=item["event_attempts"],
        next_attempt_at=item["next_attempt_at"],
        history=tuple(DeliveryAttempt(**attempt) for attempt in item["event_history"]),
    )
