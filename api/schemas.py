"""Request bodies of the HTTP API, named as the OpenAPI document shows them. The response bodies
live in `fanout.schemas`, where the Python client imports them too (without FastAPI); the job
a client submits in `fanout.jobspec`, where S3 ingest reads it too."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fanout.jobspec import JobCreate, WebhookCreate
from fanout.schemas import (
    Counts,
    ItemError,
    ItemResult,
    JobPublic,
    JobsPublic,
    ResultsPublic,
    TaskPublic,
    TasksPublic,
    WebhookAttempt,
    WebhookPublic,
)

__all__ = [
    "Counts",
    "ItemError",
    "ItemResult",
    "JobCreate",
    "JobPatch",
    "JobPublic",
    "JobsPublic",
    "ResultsPublic",
    "TaskPublic",
    "TasksPublic",
    "WebhookAttempt",
    "WebhookCreate",
    "WebhookPublic",
]


class JobPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # taken as written: no "5" or true

    max_concurrency: int = Field(ge=1, le=10_000)
