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

from fanout.errors import (
    IdempotencyConflict,
    IdempotencyMismatch,
    InvalidJob,
    JobFinished,
    JobNotFound,
    StoreUnavailable,
)
from fanout.jobspec import field_errors

MEDIA_TYPE = "application/problem+json"
validation_errors = field_errors  # the routes' name for it
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


def problem_response(request: Request, problem: Problem) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path,
    }
    if problem.errors is not None:
        body["errors"] = problem.errors
    return Response(to_json(body), problem.status, problem.headers, media_type=MEDIA_TYPE)


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
        problem = Problem(422, "The request is not valid", errors=validation_errors(error.errors()))
        return problem_response(request, problem)

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

    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(StoreUnavailable, on_unavailable)
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(InvalidJob, on_invalid_job)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(JobNotFound, handle(404, "Job not found"))
    app.add_exception_handler(JobFinished, handle(409, "Job has already ended"))
    app.add_exception_handler(IdempotencyConflict, handle(409, "Request in progress"))
    app.add_exception_handler(IdempotencyMismatch, handle(422, "Idempotency key reused"))
