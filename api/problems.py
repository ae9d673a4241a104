"""Errors as `application/problem+json` (RFC 9457), each naming the field or item at fault."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic_core import to_json
from starlette.exceptions import HTTPException
from starlette.types import Scope

from fanout.errors import (
    IdempotencyConflict,
    IdempotencyMismatch,
    InvalidJob,
    JobFinished,
    JobNotFinished,
    JobNotFound,
    NothingToRedrive,
    Overloaded,
    StoreUnavailable,
)
from fanout.jobspec import field_errors

MEDIA_TYPE = "application/problem+json"
validation_errors = field_errors  # the routes' name for it
ECHO_LIMIT = 200
DETAIL_LIMIT = 1000
log = logging.getLogger("fanout.api")


class Problem(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.errors = errors
        self.headers = headers


def shorten(text: str, limit: int = ECHO_LIMIT) -> str:
    """A value echoed back in an error, cut to `limit` characters: a 20 MB task name is not
    sent back whole."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _response(path: str, problem: Problem) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": shorten(problem.detail, DETAIL_LIMIT),
        "instance": shorten(path),
    }
    if problem.errors is not None:
        body["errors"] = problem.errors
    return Response(to_json(body), problem.status, problem.headers, media_type=MEDIA_TYPE)


def problem_response(request: Request, problem: Problem) -> Response:
    return _response(request.url.path, problem)


def asgi_problem(scope: Scope, problem: Problem) -> Response:
    """The problem as an ASGI response, for middleware (before there is a Request)."""
    return _response(scope.get("path", ""), problem)


def invalid_body(errors: Any, title: str) -> Problem:
    """422 naming each field at fault; 400 when the body is not JSON at all."""
    errors = list(errors)
    if errors and all(error["type"] == "json_invalid" for error in errors):
        reason = shorten(str(errors[0].get("ctx", {}).get("error", "")))
        return Problem(400, f"The body is not JSON: {reason}", title="Body is not JSON")
    return Problem(422, title, errors=validation_errors(errors))


def install(app: FastAPI) -> None:
    def handle(status: int, title: str | None = None) -> Any:
        async def handler(request: Request, error: Exception) -> Response:
            return problem_response(request, Problem(status, str(error), title=title))

        return handler

    async def on_problem(request: Request, error: Exception) -> Response:
        assert isinstance(error, Problem)
        return problem_response(request, error)

    async def on_invalid_job(request: Request, error: Exception) -> Response:
        assert isinstance(error, InvalidJob)
        return problem_response(request, Problem(422, error.title, errors=error.errors))

    async def on_validation(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        return problem_response(request, invalid_body(error.errors(), "The request is not valid"))

    async def on_http(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        headers = dict(error.headers) if error.headers else None
        problem = Problem(error.status_code, str(error.detail), headers=headers)
        return problem_response(request, problem)

    async def on_unexpected(request: Request, error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        problem = Problem(500, "An unexpected error occurred; it has been logged.")
        return problem_response(request, problem)

    async def on_unavailable(request: Request, error: Exception) -> Response:
        log.warning("%s %s: %s", request.method, request.url.path, error)
        service = getattr(request.app.state, "service", None)
        wait = service.settings.unavailable_retry_after if service is not None else 5
        problem = Problem(
            503,
            "The store cannot write now (is its disk full?); nothing was stored. Try again.",
            title="Store unavailable",
            headers={"retry-after": str(wait)},
        )
        return problem_response(request, problem)

    async def on_overloaded(request: Request, error: Exception) -> Response:
        assert isinstance(error, Overloaded)
        problem = Problem(
            429,
            f"Too much work is waiting: {error}. Retry after {error.retry_after} s.",
            title="Backlog full",
            headers={"retry-after": str(error.retry_after)},
        )
        return problem_response(request, problem)

    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(Overloaded, on_overloaded)
    app.add_exception_handler(StoreUnavailable, on_unavailable)
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(InvalidJob, on_invalid_job)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(JobNotFound, handle(404, "Job not found"))
    app.add_exception_handler(JobFinished, handle(409, "Job has already ended"))
    app.add_exception_handler(JobNotFinished, handle(409, "Job is still running"))
    app.add_exception_handler(NothingToRedrive, handle(409, "Nothing to redrive"))
    app.add_exception_handler(IdempotencyConflict, handle(409, "Request in progress"))
    app.add_exception_handler(IdempotencyMismatch, handle(422, "Idempotency key reused"))
