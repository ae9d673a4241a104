"""A job as a client submits it, and as the policy holds it between checking and storing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fanout import readers, tasks
from fanout.intake import Intake
from fanout.models import JobId


@dataclass(frozen=True)
class JobRequest:
    """A job as submitted. Its items come either in `items` (any iterable, read once, item by
    item: a list, or a stream's items as they are parsed) or from the file `items_url` names,
    read as `items_format` (None: as its name's extension says)."""

    task: str
    items: Iterable[Any]
    params: dict[str, Any]
    webhook_url: str | None = None
    webhook_secret: str | None = None
    chunk_size: int | None = None
    max_concurrency: int | None = None
    max_attempts: int | None = None
    tolerated_failure_count: int | None = None
    tolerated_failure_percentage: float | None = None
    timeout_seconds: float | None = None
    reduce: str | None = None
    items_url: str | None = None
    items_format: readers.Format | None = None


@dataclass
class Submission:
    """A job checked and its items validated and spooled, not yet stored (`Fanout.take_in`)."""

    request: JobRequest
    task: tasks.TaskDef
    intake: Intake

    def __enter__(self) -> Submission:
        return self

    def __exit__(self, *exc: object) -> None:
        self.intake.close()

    def fingerprint(self) -> str:
        """What an idempotency key compares: the request's JSON value in canonical form (sorted
        keys, no spaces) with the digest of its validated items, hashed. The same job sent
        with other spacing, key order or item spelling has the same fingerprint."""
        fields = {f.name: getattr(self.request, f.name) for f in dataclasses.fields(self.request)}
        fields["items"] = self.intake.digest()
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def new_job_id() -> JobId:
    """Time-ordered, so ids sort by creation like the listing does."""
    return JobId(f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(8)}")
