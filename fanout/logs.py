"""Logging of `fanout serve` and `fanout worker`: to stderr, as text or as one JSON object a line
(python-json-logger), uvicorn's loggers included; and the line each job writes when it is
submitted and when it ends, with its counts and duration.

Worker processes start from a fresh interpreter (a forkserver), so each calls `configure` too.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from fanout.models import Job
from fanout.settings import LogFormat, Settings

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers that narrate every request they make at INFO (the notifier's httpx, boto3's clients).
CHATTY = ("httpx", "httpcore", "botocore", "boto3", "urllib3")
jobs = logging.getLogger("fanout.jobs")


class AccessFields(logging.Filter):
    """uvicorn's access line as fields too: its arguments are (client, method, path, http
    version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, _, status = record.args
            record.event, record.client, record.method = "http.request", client, method
            record.path, record.status = path, status
        return True


def formatter(log_format: LogFormat) -> logging.Formatter:
    if log_format == "json":
        # Only the server's processes need these.
        from pythonjsonlogger.core import RESERVED_ATTRS
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(
            "{levelname}{name}{message}",
            style="{",
            # uvicorn's copy of its message with terminal colours in it.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )
    return logging.Formatter(TEXT)


def configure(settings: Settings) -> None:
    """One stderr handler on the root logger; uvicorn's loggers propagate to it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(settings.log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessFields) for f in access.filters):
        access.addFilter(AccessFields())
    quiet = logging.DEBUG if settings.log_level == "debug" else logging.WARNING
    for name in CHATTY:
        logging.getLogger(name).setLevel(quiet)


def _fields(job: Job, event: str) -> dict[str, Any]:
    return {"event": event, "job_id": job.id, "tenant": job.tenant, "task": job.task}


def job_submitted(job: Job) -> None:
    jobs.info(
        "job %s submitted: task %s, %d items",
        job.id,
        job.task,
        job.total,
        extra={**_fields(job, "job.submitted"), "total": job.total},
    )


def job_finished(job: Job) -> None:
    """The line of a job that has just ended (its terminal transition was won here)."""
    duration = round((job.finished_at or job.created_at) - job.created_at, 3)
    counts = {
        "total": job.total,
        "succeeded": job.succeeded,
        "failed": job.failed,
        "cancelled": job.cancelled,
    }
    jobs.info(
        "job %s %s: %d of %d items succeeded, %d failed, %d cancelled, in %.3f s",
        job.id,
        job.status.value,
        job.succeeded,
        job.total,
        job.failed,
        job.cancelled,
        duration,
        extra={
            **_fields(job, "job.finished"),
            "status": job.status.value,
            "counts": counts,
            "duration_s": duration,
        },
    )
