"""The domain's nouns: jobs, chunks, outcomes, webhook events."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, NewType

import msgspec
from msgspec import field

JobId = NewType("JobId", str)
TenantId = NewType("TenantId", str)
EventId = NewType("EventId", str)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"

    @classmethod
    def after_attempt(cls, delivered: bool, next_attempt_at: float | None) -> DeliveryStatus:
        """Delivered; or pending while another attempt is scheduled; or failed for good."""
        if delivered:
            return cls.DELIVERED
        return cls.FAILED if next_attempt_at is None else cls.PENDING


class JobOptions(msgspec.Struct, frozen=True):
    chunk_size: int
    max_concurrency: int
    max_attempts: int
    tolerated_failure_count: int | None = None
    tolerated_failure_percentage: float | None = None
    timeout_seconds: float | None = None
    reduce: str | None = None


class Webhook(msgspec.Struct, frozen=True):
    url: str
    secret: str


class ChunkRef(msgspec.Struct, frozen=True):
    """Items `start` (inclusive) to `end` (exclusive) of one job: what a queue message carries."""

    job_id: JobId
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


class ChunkInput(msgspec.Struct, frozen=True):
    start: int
    end: int
    items_json: bytes


class ChunkResult(msgspec.Struct, frozen=True):
    """One outcome line per item, as JSON Lines in input order, with the chunk's tallies and
    what running it used: item attempts (retries included) and seconds of the worker's time."""

    succeeded: int
    failed: int
    lines: bytes
    attempts: int = 0
    seconds: float = 0.0
    # The billable requests running the chunk made so far (AWS), by kind: a live tally that
    # the store reads when it writes the result.
    requests: Mapping[str, float] = field(default_factory=dict)


class NewJob(msgspec.Struct, frozen=True):
    id: JobId
    tenant: TenantId
    task: str
    params: dict[str, Any]
    options: JobOptions
    webhook: Webhook | None
    total: int
    created_at: float
    # The billable requests storing the job made (AWS), read when its item is written.
    requests: Mapping[str, float] = field(default_factory=dict)


class DeliveryAttempt(msgspec.Struct, frozen=True):
    at: float
    status_code: int | None
    error: str | None


class WebhookEvent(msgspec.Struct, frozen=True):
    """One completion event in the outbox; `id` is the Standard Webhooks `webhook-id`."""

    id: EventId
    job_id: JobId
    url: str
    secret: str
    payload: bytes
    # A new event: pending, not tried yet, due at once.
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    next_attempt_at: float = 0.0
    history: tuple[DeliveryAttempt, ...] = ()


class Usage(msgspec.Struct, frozen=True):
    """What a job has used so far, recorded with each chunk's result: chunk runs, item attempts
    (retries included), seconds of worker time and, where they are billed by the request (AWS),
    the requests it made by kind (`fanout.pricing.USAGE_PRICES` names the kinds)."""

    chunks: int = 0
    attempts: int = 0
    worker_seconds: float = 0.0
    requests: dict[str, float] = field(default_factory=dict)


class Job(msgspec.Struct, frozen=True):
    id: JobId
    tenant: TenantId
    task: str
    status: JobStatus
    params: dict[str, Any]
    options: JobOptions
    webhook_url: str | None
    total: int
    succeeded: int
    failed: int
    running: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    reduce_value: Any = None
    error: str | None = None
    event: WebhookEvent | None = None
    # Where the ordered final output was written (AWS: an S3 URI); None where none is written.
    output: str | None = None
    usage: Usage = field(default_factory=Usage)
    redrive_count: int = 0
    # When a job with a timeout times out: its creation (or its last redrive) plus the timeout.
    deadline: float | None = None

    @property
    def cancelled(self) -> int:
        """Items that never got an outcome because the job ended first."""
        if not self.status.terminal:
            return 0
        return self.total - self.succeeded - self.failed

    @property
    def pending(self) -> int:
        return self.total - self.succeeded - self.failed - self.running - self.cancelled


class Page(msgspec.Struct, frozen=True):
    items: list[Job]
    next_cursor: str | None


class RecordOutcome(msgspec.Struct, frozen=True):
    """What recording a chunk result did: `counted` is False for a repeat or a dead chunk."""

    counted: bool
    released: list[ChunkRef] = field(default_factory=list)
    complete: bool = False


class Delivery(msgspec.Struct, frozen=True):
    """A received queue message: the chunk, its receipt handle and how often it was received."""

    chunk: ChunkRef
    receipt: str
    receive_count: int


class Counted(msgspec.Struct, frozen=True):
    """A chunk result an asynchronous fan-in counted, and what counting it did."""

    chunk: ChunkRef
    outcome: RecordOutcome


class ChangeBatch(msgspec.Struct, frozen=True):
    """Change records of one stream shard in stream order, as Lambda's event source would hand
    them over (`records` in the Lambda event's shape); `position` is the last record's."""

    source: str
    records: list[dict[str, Any]]
    position: str


class Notice(msgspec.Struct, frozen=True):
    """A message on the notify queue: "deliver this completion event". The outbox, not the
    message, holds the event and its attempts; `receipt` is set on received notices."""

    event_id: EventId
    job_id: JobId
    receipt: str = ""


class Backlog(msgspec.Struct, frozen=True):
    """Work waiting: chunks not yet started (released or still held back by their window) and
    webhook events not yet delivered. For backpressure, readiness and metrics."""

    unstarted_chunks: int
    undelivered_webhooks: int


class KeyClaim(msgspec.Struct, frozen=True):
    """What claiming an idempotency key gave: the id of the one job the key stands for and,
    once a request with it has finished, that request's stored response."""

    job_id: JobId
    response: bytes | None = None


class UploadTarget(msgspec.Struct, frozen=True):
    """Where to PUT one input file, and how the job then names it: `url` (absolute, or a path
    on this service), the `headers` the PUT must carry, and the job's `items_url`."""

    url: str
    headers: dict[str, str]
    items_url: str
    expires_at: float
