"""The HTTP API's response bodies, shared by the server (`fanout.api`) and the Python client
(`fanout.client`): both sides parse and publish the same models. Nothing here imports FastAPI."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel as _Base
from pydantic import ConfigDict, Field

from fanout.models import JobStatus


class BaseModel(_Base):
    # Built on first use (pydantic's `defer_build`): the server returns these bodies as bytes it
    # renders itself, so they are needed for the OpenAPI document and the client's parsing
    # only, not on every cold start of the API on Lambda (bench/README.md, `coldstart`).
    model_config = ConfigDict(defer_build=True)


class Counts(BaseModel):
    total: int
    succeeded: int
    failed: int
    pending: int
    running: int
    cancelled: int


class WebhookAttempt(BaseModel):
    at: str | None
    status_code: int | None
    error: str | None


class WebhookPublic(BaseModel):
    url: str
    secret: str | None = Field(default=None, description="Only in the response that created it.")
    event_id: str | None
    status: Literal["pending", "delivered", "failed"] | None
    attempts: list[WebhookAttempt]


class UsagePublic(BaseModel):
    chunks: int = Field(description="Chunk runs recorded (a redrive's runs add to them).")
    attempts: int = Field(description="Item attempts, retries included.")
    worker_seconds: float = Field(description="Seconds workers spent running the job's chunks.")
    requests: dict[str, float] = Field(
        description="AWS: billable requests the job made, by kind (DynamoDB in request units);"
        " empty on the embedded backend."
    )
    cost: dict[str, float] = Field(description="Their price in US dollars, by kind.")
    cost_usd: float | None = Field(
        description="Their total price at `fanout.pricing`'s list prices; null where nothing is"
        " billed by the request."
    )


class JobPublic(BaseModel):
    id: str
    task: str
    status: JobStatus
    counts: Counts
    created_at: str
    started_at: str | None
    finished_at: str | None
    params: dict[str, Any]
    chunk_size: int
    max_concurrency: int
    max_attempts: int
    tolerated_failure_count: int | None
    tolerated_failure_percentage: float | None
    timeout_seconds: float | None
    reduce: str | None
    result: Any = Field(description="The reducer's value, once the job has ended.")
    error: str | None
    output: str | None = Field(
        description="Where the ordered results were written as JSON Lines once the job ended"
        " (AWS: `s3://<bucket>/outputs/<job id>.jsonl`); null where none is written."
    )
    redrive_count: int = Field(
        default=0, description="How often the job's failed or unrun items were run again."
    )
    usage: UsagePublic | None = None
    webhook: WebhookPublic | None


class JobsPublic(BaseModel):
    items: list[JobPublic]
    next_cursor: str | None


class ItemError(BaseModel):
    type: str
    message: str
    attempts: int


class ItemResult(BaseModel):
    index: int
    status: Literal["succeeded", "failed", "pending", "cancelled"]
    output: Any = None
    error: ItemError | None = None


class ResultsPublic(BaseModel):
    items: list[ItemResult]
    next_cursor: str | None


class TaskPublic(BaseModel):
    name: str
    is_async: bool
    takes_params: bool
    max_attempts: int | None
    timeout: float | None
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


class TasksPublic(BaseModel):
    items: list[TaskPublic]
    reducers: list[str]


class JobEvent(BaseModel):
    """A job's completion webhook body (Standard Webhooks: `type`, `timestamp`, `data`)."""

    type: Literal["job.succeeded", "job.failed", "job.cancelled"]
    timestamp: str
    data: JobPublic


class Problem(BaseModel):
    """An error body, `application/problem+json` (RFC 9457); `errors` names fields or items."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None
