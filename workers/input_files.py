"""An input file put in the bucket becomes a job.

The convention, for `s3://<bucket>/jobs/<task>/<any name>.<json|jsonl|ndjson|csv>`:

- the items: a `.json` file holds one JSON array; a `.jsonl`/`.ndjson` file one JSON value per
  line (blank lines skipped); a `.csv` file a header row, then one item per row, an object whose
  keys are the header's names and whose values are strings (the task's input type converts them);
- the task: the key's second segment, unless the object's metadata names one;
- object metadata (`x-amz-meta-...`, 2 KB in all) may add:
  - `fanout-task`: the task, instead of the key's segment;
  - `fanout-tenant`: the tenant that owns the job and reads it through the API (default
    `default`, the one tenant of a deployment without API keys);
  - `fanout-options`: a JSON object of the other fields `POST /jobs` takes (`params`, `webhook`,
    `chunk_size`, `max_concurrency`, `max_attempts`, `tolerated_failure_count`,
    `tolerated_failure_percentage`, `timeout_seconds`, `reduce`). A `webhook` needs its
    `secret` here: nobody would see a generated one.

S3 may deliver an event more than once; the same PUT (same `sequencer`) creates one job.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from pydantic import ValidationError

from fanout.errors import InvalidJob
from fanout.jobspec import JobCreate, field_errors
from fanout.models import Job, TenantId
from fanout.service import Fanout, JobRequest

PREFIX = "jobs/"
DEFAULT_TENANT = TenantId("default")


class UnreadableInput(ValueError):
    """The file or its metadata can't become a job; retrying will not change that."""


@dataclass(frozen=True)
class InputFile:
    """One `ObjectCreated` record: where the object is, and which PUT created it."""

    bucket: str
    key: str
    sequencer: str

    @property
    def idempotency_key(self) -> str:
        return f"s3:{self.bucket}/{self.key}#{self.sequencer}"


def input_files(event: dict[str, Any]) -> list[InputFile]:
    """The objects an S3 notification event names (keys arrive URL-encoded, spaces as '+')."""
    return [
        InputFile(
            bucket=record["s3"]["bucket"]["name"],
            key=unquote_plus(record["s3"]["object"]["key"]),
            sequencer=record["s3"]["object"].get("sequencer", ""),
        )
        for record in event.get("Records", [])
        if record.get("eventName", "").startswith("ObjectCreated:")
    ]


def parse_items(key: str, body: bytes) -> list[Any]:
    name = key.lower()
    try:
        if name.endswith(".json"):
            items = json.loads(body)
            if not isinstance(items, list):
                raise UnreadableInput(f"{key}: a .json input must hold one JSON array")
            return items
        if name.endswith((".jsonl", ".ndjson")):
            return [json.loads(line) for line in body.splitlines() if line.strip()]
        if name.endswith(".csv"):
            return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as error:
        raise UnreadableInput(f"{key}: {error}") from error
    raise UnreadableInput(f"{key}: expected a .json, .jsonl, .ndjson or .csv file")


def job_request(key: str, metadata: dict[str, str], body: bytes) -> tuple[TenantId, JobRequest]:
    """The tenant and the job an input file asks for. Raises UnreadableInput or InvalidJob."""
    parts = key.removeprefix(PREFIX).split("/")
    task = metadata.get("fanout-task") or (parts[0] if len(parts) > 1 else "")
    if not task:
        raise UnreadableInput(f"{key}: no task: put it under jobs/<task>/ or set fanout-task")
    try:
        options = json.loads(metadata.get("fanout-options") or "{}")
    except json.JSONDecodeError as error:
        raise UnreadableInput(f"{key}: fanout-options is not JSON: {error}") from error
    if not isinstance(options, dict) or {"task", "items"} & set(options):
        raise UnreadableInput(f"{key}: fanout-options must be an object without task or items")
    try:
        create = JobCreate.model_validate(
            {**options, "task": task, "items": parse_items(key, body)}
        )
    except ValidationError as error:
        errors = field_errors(error.errors(include_url=False))
        raise InvalidJob("The job is not valid", errors) from error
    if create.webhook is not None and create.webhook.secret is None:
        raise UnreadableInput(f"{key}: a webhook in fanout-options needs its secret")
    request = create.to_request()
    return TenantId(metadata.get("fanout-tenant") or DEFAULT_TENANT), request


def submit_once(fanout: Fanout, tenant: TenantId, request: JobRequest, file: InputFile) -> str:
    """Submit the job unless this PUT's event was handled before; returns the job's id. The
    same idempotent submit as `POST /jobs` with an `Idempotency-Key`: the PUT's key."""
    return fanout.submit_once(tenant, request, file.idempotency_key, _job_id).decode()


def _job_id(job: Job, secret: str | None) -> bytes:
    return job.id.encode()
