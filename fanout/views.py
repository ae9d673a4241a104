"""The job as clients see it: in `GET /jobs/{id}` and as the `data` of its webhook."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from fanout import pricing
from fanout.models import Job, Usage


def timestamp(seconds: float | None) -> str | None:
    return None if seconds is None else _rfc3339(seconds)


# Clients poll the same jobs over and over: their three timestamps repeat, and formatting one
# costs more than the dict lookup that finds it.
@functools.lru_cache(maxsize=4096)
def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def public_job(job: Job) -> dict[str, Any]:
    options = job.options
    view: dict[str, Any] = {
        "id": job.id,
        "task": job.task,
        "status": job.status.value,
        "counts": {
            "total": job.total,
            "succeeded": job.succeeded,
            "failed": job.failed,
            "pending": job.pending,
            "running": job.running,
            "cancelled": job.cancelled,
        },
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
        "params": job.params,
        "chunk_size": options.chunk_size,
        "max_concurrency": options.max_concurrency,
        "max_attempts": options.max_attempts,
        "tolerated_failure_count": options.tolerated_failure_count,
        "tolerated_failure_percentage": options.tolerated_failure_percentage,
        "timeout_seconds": options.timeout_seconds,
        "reduce": options.reduce,
        "result": job.reduce_value,
        "error": job.error,
        "output": job.output,
        "redrive_count": job.redrive_count,
        "usage": public_usage(job.usage),
        "webhook": None,
    }
    if job.webhook_url is not None:
        event = job.event
        view["webhook"] = {
            "url": job.webhook_url,
            "event_id": event.id if event else None,
            "status": event.status.value if event else None,
            "attempts": [
                {"at": timestamp(a.at), "status_code": a.status_code, "error": a.error}
                for a in (event.history if event else ())
            ],
        }
    return view


def public_usage(usage: Usage) -> dict[str, Any]:
    """Usage with the price of its requests (None where nothing is billed by the request)."""
    cost = pricing.usage_cost(usage.requests)
    return {
        "chunks": usage.chunks,
        "attempts": usage.attempts,
        "worker_seconds": round(usage.worker_seconds, 6),
        "requests": usage.requests,
        "cost": cost,
        "cost_usd": sum(cost.values()) if usage.requests else None,
    }
