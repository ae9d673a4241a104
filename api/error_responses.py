"""Every error the server sends, declared in the OpenAPI document as `application/problem+json`
with one shared `Problem` schema, so fuzzers and generated clients can check them.

Which statuses an operation declares follows from where they come from: the middleware (421 on
every operation; 401 and 403 on every unsafe one; 401 and 503 where a tenant is needed; 413, 415
and 400 where a body is read), validation (422 wherever there are parameters or a body), the job
routes (404 by id), and the few operations that add their own (`EXTRA`). FastAPI's own 422
(`HTTPValidationError`, in application/json) is replaced: this server never sends it.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fanout.api.problems import MEDIA_TYPE

UNSAFE = frozenset({"post", "put", "patch", "delete"})
# Statuses particular to one operation: (method, path) -> {status: why}.
EXTRA: dict[tuple[str, str], dict[int, str]] = {
    ("post", "/jobs"): {
        409: "A request with this Idempotency-Key is still in progress.",
        429: "Too much work is waiting to start (backpressure); retry after Retry-After.",
        503: "The store cannot take the job now; retry after Retry-After.",
    },
    ("patch", "/jobs/{job_id}"): {409: "The job has already ended."},
    ("post", "/jobs/{job_id}/cancel"): {409: "The job has already ended."},
    ("get", "/jobs/{job_id}/events"): {429: "Too many event streams open from this address."},
}
WHY = {
    400: "The body is not JSON.",
    401: "No valid API key (`Authorization: Bearer <key>`).",
    403: "A state-changing request from another origin (a web page).",
    404: "No such job for this tenant.",
    413: "The body is over FANOUT_MAX_BODY_BYTES.",
    415: "The body's Content-Type is not one this operation takes.",
    421: "Without API keys, only loopback Host names are served.",
    422: "A field, parameter or item is not valid; `errors` names each.",
    503: "The API keys cannot be read now.",
}
HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}},
    503: {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}},
}


class FieldError(BaseModel):
    model_config = ConfigDict(extra="allow")

    field: str = Field(description="Where: `task`, `items[3]`, `params.x`, `webhook.url`, ...")
    message: str
    index: int | None = Field(default=None, description="The item's index, for an item.")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = Field(
        default=None, description="Each field or item at fault (at most 50)."
    )


def statuses(method: str, path: str, operation: dict[str, Any]) -> dict[int, str]:
    found = {421: WHY[421]}
    tenant = path.startswith("/jobs")
    if method in UNSAFE or tenant:
        found |= {401: WHY[401], 503: WHY[503]}
    if method in UNSAFE:
        found[403] = WHY[403]
    if "requestBody" in operation:
        found |= {status: WHY[status] for status in (400, 413, 415, 422)}
    if operation.get("parameters"):
        found[422] = WHY[422]
    if "{job_id}" in path:
        found[404] = WHY[404]
    return found | EXTRA.get((method, path), {})


def declare_errors(document: dict[str, Any]) -> None:
    """Add the error responses to every operation of `document`, in place."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem.pop("$defs", {}))
    components["Problem"] = problem
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status, why in sorted(statuses(method, path, operation).items()):
                responses[str(status)] = _response(status, why)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


def _response(status: int, why: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": f"{HTTPStatus(status).phrase}: {why}",
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status in HEADERS:
        response["headers"] = HEADERS[status]
    return response
