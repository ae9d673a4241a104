"""What `Client` and `AsyncClient` share: each operation as a `Call` (the request to make and how
to read its answer), and the bookkeeping of a live event stream. The two clients only send."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
from httpx_sse import ServerSentEvent
from pydantic import BaseModel

from fanout.client import uploads
from fanout.client.errors import FanoutClientError, raise_for_problem
from fanout.client.items import Format
from fanout.client.uploads import Upload
from fanout.schemas import ItemResult, JobPublic, JobsPublic, TasksPublic

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
DEFAULT_URL = "http://127.0.0.1:8000"
# A dropped event stream is reopened (with Last-Event-ID) this many times in a row at most.
MAX_RECONNECTS = 5


def http_options(
    url: str | None, api_key: str | None, timeout: float, headers: Mapping[str, str] | None
) -> dict[str, Any]:
    """The httpx client's options: the URL and key given, else FANOUT_URL and FANOUT_API_KEY."""
    key = api_key if api_key is not None else os.environ.get("FANOUT_API_KEY")
    merged = {"user-agent": "fanout-client", **(headers or {})}
    if key:
        merged["authorization"] = f"Bearer {key}"
    return {
        "base_url": url or os.environ.get("FANOUT_URL") or DEFAULT_URL,
        "headers": merged,
        # Reads wait longer than the rest: a page of a big export may take a while to start.
        "timeout": httpx.Timeout(timeout, read=max(timeout, 60.0)),
    }


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        raise_for_problem(response)
        return model.model_validate_json(response.content)

    return parse


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    url: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # A file of items to stream as (part of) the body: the client reads it as it sends.
    upload: Upload | None = None

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        params = {k: v for k, v in (self.params or {}).items() if v is not None}
        content: Any = None
        if self.upload is not None:
            sync = isinstance(http, httpx.Client)
            content = self.upload.blocks() if sync else self.upload.ablocks()
        return http.build_request(
            self.method,
            self.url,
            params=params,
            json=self.json,
            content=content,
            headers=self.headers,
        )


def _job(method: str, url: str, json: Any = None) -> Call[JobPublic]:
    return Call(method, url, _model(JobPublic), json=json)


def job_path(job_id: str) -> str:
    if not job_id or "/" in job_id or job_id in (".", ".."):
        raise FanoutClientError(f"not a job id: {job_id!r}")
    return f"/jobs/{job_id}"


def submit(
    task: str,
    items: Iterable[Any] | None,
    items_file: str | Path | None,
    items_format: Format | None,
    idempotency_key: str | None,
    webhook: str | None,
    webhook_secret: str | None,
    options: dict[str, Any],
) -> Call[JobPublic]:
    """`POST /jobs`. The one place that decides how items travel: given items in a JSON job
    body; a file's streamed from the file (`fanout.client.uploads`)."""
    if (items is None) == (items_file is None):
        raise FanoutClientError("give either items or items_file")
    job: dict[str, Any] = {"task": task}
    if webhook is not None:
        job["webhook"] = {"url": webhook, "secret": webhook_secret}
    job.update((k, v) for k, v in options.items() if v is not None)
    headers = {"idempotency-key": idempotency_key} if idempotency_key else {}
    if items is not None:
        body = job | {"items": list(items)}
        return Call("POST", "/jobs", _model(JobPublic), json=body, headers=headers)
    upload = uploads.open_upload(items_file or "-", items_format)
    query, content_type = uploads.request_parts(upload, job)
    return Call(
        "POST", "/jobs", _model(JobPublic), query, headers=headers | content_type, upload=upload
    )


def get(job_id: str) -> Call[JobPublic]:
    return _job("GET", job_path(job_id))


def cancel(job_id: str) -> Call[JobPublic]:
    return _job("POST", f"{job_path(job_id)}/cancel")


def redrive(job_id: str) -> Call[JobPublic]:
    return _job("POST", f"{job_path(job_id)}/redrive")


def set_max_concurrency(job_id: str, value: int) -> Call[JobPublic]:
    return _job("PATCH", job_path(job_id), {"max_concurrency": value})


def list_jobs(status: str | None, cursor: str | None, limit: int | None) -> Call[JobsPublic]:
    params = {"status": status, "cursor": cursor, "limit": limit}
    return Call("GET", "/jobs", _model(JobsPublic), params=params)


def tasks() -> Call[TasksPublic]:
    return Call("GET", "/tasks", _model(TasksPublic))


def results(job_id: str) -> Call[None]:
    """`GET /jobs/{id}/results` as JSON Lines: read as a stream, line by line."""
    return Call("GET", f"{job_path(job_id)}/results", raise_for_problem, {"format": "jsonl"})


def result_line(line: str) -> ItemResult | None:
    return ItemResult.model_validate_json(line) if line.strip() else None


class EventCursor:
    """Where a reader of `GET /jobs/{id}/events` stands: the last event id it saw (sent back as
    Last-Event-ID when the stream is reopened), the latest job, and whether the job has ended."""

    def __init__(self, job_id: str, timeout: float | None) -> None:
        self.path = f"{job_path(job_id)}/events"
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.last_id: str | None = None
        self.ended = False
        self.failures = 0
        self.opened_at = 0.0

    def headers(self) -> dict[str, str]:
        """The headers to open (or reopen) the stream with."""
        self.check_deadline()
        self.opened_at = time.monotonic()
        headers = {"accept": "text/event-stream"}
        if self.last_id is not None:
            headers["last-event-id"] = self.last_id
        return headers

    def read(self, event: ServerSentEvent) -> JobPublic | None:
        """The job an event carries (None for anything but `progress` and `end`)."""
        if event.event not in ("progress", "end"):
            return None
        self.failures = 0
        self.last_id = event.id or self.last_id
        self.ended = event.event == "end"
        return JobPublic.model_validate_json(event.data)

    def dropped(self, error: Exception | None) -> float:
        """The stream closed before the job ended: how long to wait before reopening it. The
        server closes a long stream now and then (its lifetime cap): that is no failure, but an
        error, or a stream that closes at once, is; too many of them in a row give up."""
        if error is None and time.monotonic() - self.opened_at > 1.0:
            return 0.0
        self.failures += 1
        if self.failures > MAX_RECONNECTS:
            raise FanoutClientError(f"the event stream of {self.path} keeps failing") from error
        self.check_deadline()
        return min(0.2 * 2.0**self.failures, 5.0)

    def check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TimeoutError(f"{self.path}: the job did not end in time")
