"""Request and response bodies of the HTTP API, named as the OpenAPI document shows them."""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fanout.models import JobStatus
from fanout.service import JobRequest


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="Receives one signed POST when the job ends.")
    secret: str | None = Field(
        default=None,
        description="Standard Webhooks secret (`whsec_` + base64, 24-64 bytes); generated and"
        " returned once if omitted.",
    )

    @field_validator("secret")
    @classmethod
    def _valid_secret(cls, value: str | None) -> str | None:
        if value is None:
            return None
        raw = value.removeprefix("whsec_")
        try:
            key = base64.b64decode(raw, validate=True)
        except ValueError as error:
            raise ValueError("must be whsec_ followed by base64") from error
        if not 24 <= len(key) <= 64:
            raise ValueError("must encode 24 to 64 bytes")
        return value


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, description="A registered task's name (see `GET /tasks`).")
    items: list[Any] = Field(description="The items, each validated against the task's input.")
    params: dict[str, Any] = Field(default_factory=dict, description="Passed to every call.")
    webhook: WebhookCreate | None = None
    chunk_size: int | None = Field(default=None, ge=1, le=10_000)
    max_concurrency: int | None = Field(default=None, ge=1, le=10_000)
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    tolerated_failure_count: int | None = Field(default=None, ge=0)
    tolerated_failure_percentage: float | None = Field(default=None, ge=0, le=100)
    timeout_seconds: float | None = Field(default=None, gt=0)
    reduce: str | None = Field(default=None, description="A registered reducer's name.")

    def to_request(self) -> JobRequest:
        """The service's view of this body, the webhook flattened (items are not copied)."""
        return JobRequest(
            task=self.task,
            items=self.items,
            params=self.params,
            webhook_url=self.webhook.url if self.webhook else None,
            webhook_secret=self.webhook.secret if self.webhook else None,
            **self.model_dump(exclude={"task", "items", "params", "webhook"}),
        )


class JobPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_concurrency: int = Field(ge=1, le=10_000)


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
