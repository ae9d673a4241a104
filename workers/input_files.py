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

The items are read from the object as it downloads (`fanout.readers`, as an NDJSON body is),
validated as they come; a file with a bad line or item creates no job. S3 may deliver an event
more than once; the same PUT (same `sequencer`) creates one job.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import unquote_plus

from pydantic import ValidationError

from fanout import readers
from fanout.errors import InvalidJob
from fanout.jobspec import JobCreate, field_errors
from fanout.models import Job, TenantId
from fanout.service import Fanout, JobRequest
from fanout.settings import Settings

PREFIX = "jobs/"
ITEM_FIELDS = ("task", "items", "items_url", "items_format")  # the file and its key say these
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


def job_request(
    key: str, metadata: dict[str, str], body: IO[bytes], settings: Settings
) -> tuple[TenantId, JobRequest]:
    """The tenant and the job an input file asks for, its items read from `body` as the job
    is taken in: the same streaming path as an NDJSON body or an `items_url`, so a large file
    is never held whole. Raises UnreadableInput or InvalidJob; a bad line is found later, when
    the service reads the items (InvalidJob naming it)."""
    parts = key.removeprefix(PREFIX).split("/")
    task = metadata.get("fanout-task") or (parts[0] if len(parts) > 1 else "")
    if not task:
        raise UnreadableInput(f"{key}: no task: put it under jobs/<task>/ or set fanout-task")
    format = readers.format_of(key)
    if format is None:
        raise UnreadableInput(f"{key}: expected a .json, .jsonl, .ndjson or .csv file")
    try:
        options = json.loads(metadata.get("fanout-options") or "{}")
    except json.JSONDecodeError as error:
        raise UnreadableInput(f"{key}: fanout-options is not JSON: {error}") from error
    if not isinstance(options, dict) or set(ITEM_FIELDS) & set(options):
        raise UnreadableInput(f"{key}: fanout-options must be an object without task or items")
    try:
        create = JobCreate.model_validate({**options, "task": task, "items": []})
    except ValidationError as error:
        errors = field_errors(error.errors(include_url=False))
        raise InvalidJob("The job is not valid", errors) from error
    if create.webhook is not None and create.webhook.secret is None:
        raise UnreadableInput(f"{key}: a webhook in fanout-options needs its secret")
    limited = readers.limited(body, settings.max_input_bytes)
    items = readers.read_items(limited, format, settings.max_item_bytes)
    request = dataclasses.replace(create.to_request(), items=items)
    return TenantId(metadata.get("fanout-tenant") or DEFAULT_TENANT), request


def submit_once(fanout: Fanout, tenant: TenantId, request: JobRequest, file: InputFile) -> str:
    """Submit the job unless this PUT's event was handled before; returns the job's id. The
    same idempotent submit as `POST /jobs` with an `Idempotency-Key`: the PUT's key."""
    return fanout.submit_once(tenant, request, file.idempotency_key, _job_id).decode()


def _job_id(job: Job, secret: str | None) -> bytes:
    return job.id.encode()
