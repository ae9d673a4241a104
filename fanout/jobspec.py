"""A job as a client asks for it, whichever door it comes through (`POST /jobs`, an input file
in the bucket): the one schema, validated the same way, turned into the service's `JobRequest`.
It lives in the core, so the queue-side entry points need no web framework."""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from fanout.service import JobRequest

MAX_LISTED_ERRORS = 50


# Request bodies are strict (no "5" or true where an integer goes, no false for a percentage) and
# refuse NaN and Infinity in float fields: only RFC 8259 JSON, taken as written. Validators are
# built on first use (`defer_build`): a cold start that serves a poll never needs them.
STRICT = ConfigDict(extra="forbid", strict=True, defer_build=True)


class WebhookCreate(BaseModel):
    model_config = STRICT

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
    model_config = STRICT

    task: str = Field(
        min_length=1, max_length=200, description="A registered task's name (see `GET /tasks`)."
    )
    items_url: str | None = Field(
        default=None,
        max_length=2048,
        description="Instead of `items`: a file to read them from, as a stream (AWS:"
        " `s3://<the service's bucket>/<key>`; one machine: a path under the input directory,"
        " or `file:///` and its absolute path). A `.json` file holds one array, a `.jsonl` or"
        " `.ndjson` file one item a line, a `.csv` file a header row and then one item (an"
        " object of strings) a row.",
    )
    items_format: Literal["json", "jsonl", "csv"] | None = Field(
        default=None, description="The `items_url` file's format, if its name does not say it."
    )
    items: list[Any] | None = Field(
        default=None,
        validate_default=True,
        description="The items, each validated against the task's input (or `items_url`).",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Passed to every call.")
    webhook: WebhookCreate | None = None
    chunk_size: int | None = Field(default=None, ge=1, le=10_000)
    max_concurrency: int | None = Field(default=None, ge=1, le=10_000)
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    tolerated_failure_count: int | None = Field(default=None, ge=0)
    tolerated_failure_percentage: float | None = Field(
        default=None, ge=0, le=100, allow_inf_nan=False
    )
    timeout_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    reduce: str | None = Field(
        default=None, max_length=200, description="A registered reducer's name."
    )

    @field_validator("items")
    @classmethod
    def _items_or_url(cls, items: list[Any] | None, info: ValidationInfo) -> list[Any] | None:
        url = info.data.get("items_url")
        if items is None and url is None and "items_url" in info.data:
            raise ValueError("give the items, or an items_url to read them from")
        if items is not None and url is not None:
            raise ValueError("give the items or an items_url, not both")
        return items

    def to_request(self) -> JobRequest:
        """The service's view of this body, the webhook flattened (items are not copied)."""
        return JobRequest(
            task=self.task,
            items=self.items or (),
            params=self.params,
            webhook_url=self.webhook.url if self.webhook else None,
            webhook_secret=self.webhook.secret if self.webhook else None,
            **self.model_dump(exclude={"task", "items", "params", "webhook"}),
        )


def field_errors(errors: Any) -> list[dict[str, Any]]:
    """Pydantic's errors as `{"field", "message"}`, the field written as a path (`items[3]`)."""
    listed = []
    for error in list(errors)[:MAX_LISTED_ERRORS]:
        loc = [part for part in error["loc"] if part != "body"]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        listed.append({"field": path or "body", "message": error["msg"]})
    return listed
