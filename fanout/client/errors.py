"""The client's exceptions: each HTTP error carries the server's problem details (RFC 9457)."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import ValidationError

from fanout.schemas import Problem


class FanoutClientError(Exception):
    """Base class of everything the client raises on purpose."""


class APIError(FanoutClientError):
    """The server answered with an error; `problem` holds its details (`errors` names the fields
    or item indices at fault)."""

    def __init__(self, problem: Problem, response: httpx.Response) -> None:
        super().__init__(f"{problem.status} {problem.title}: {problem.detail or ''}".rstrip(": "))
        self.problem = problem
        self.response = response

    @property
    def status(self) -> int:
        return self.problem.status

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.problem.errors or []


class BadRequest(APIError):
    """400, 413, 415 and other 4xx without a class of their own."""


class Unauthorized(APIError):
    """401: no API key, or one the server does not know."""


class NotFound(APIError):
    """404: no such job for this API key's tenant."""


class Conflict(APIError):
    """409: the job has already ended (cancel), is still running (redrive), or an idempotent
    request with the same key is in progress."""


class Invalid(APIError):
    """422: the job or request is not valid; `errors` names each field or item."""


class TooManyRequests(APIError):
    """429: slow down; `retry_after` says for how long, when the server said."""

    @property
    def retry_after(self) -> float | None:
        value = self.response.headers.get("retry-after", "")
        return float(value) if value.replace(".", "", 1).isdigit() else None


class ServerError(APIError):
    """5xx: the server failed; a retry may succeed."""


class InvalidSignature(FanoutClientError):
    """A webhook whose signature, timestamp or body does not check out."""


_BY_STATUS: dict[int, type[APIError]] = {
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    422: Invalid,
    429: TooManyRequests,
}


def raise_for_problem(response: httpx.Response) -> None:
    """Raise the APIError matching an error response, with its problem details (or, from a
    server or proxy that sent none, details made from the status line)."""
    if response.is_success:
        return
    try:
        problem = Problem.model_validate_json(response.read())
    except ValidationError:
        problem = Problem(
            title=response.reason_phrase or "Error",
            status=response.status_code,
            detail=response.text[:500] or None,
            instance=response.request.url.path,
        )
    default = ServerError if response.status_code >= 500 else BadRequest
    raise _BY_STATUS.get(response.status_code, default)(problem, response)
