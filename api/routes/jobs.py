"""`/jobs`: submit, read, list, page through results, cancel, change concurrency."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from pydantic_core import to_json

from fanout import readers
from fanout.api import bodies
from fanout.api.blocking import off_loop
from fanout.api.deps import Service, Tenant
from fanout.api.problems import Problem
from fanout.api.routes.status import Bodies
from fanout.api.schemas import JobPatch, JobPublic, JobsPublic, ResultsPublic
from fanout.errors import InvalidJob
from fanout.models import Job, JobId, JobStatus
from fanout.service import Fanout, JobRequest
from fanout.views import public_job

router = APIRouter(prefix="/jobs", tags=["jobs"])
NDJSON = "application/x-ndjson"
ItemStatus = Literal["succeeded", "failed", "pending", "cancelled"]
# An export reads about this much per trip to the store; a page is bounded by its `limit` alone.
EXPORT_PIECE_BYTES = 512 * 1024
PAGE_BYTES = 1 << 62
JSON = "application/json"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # A reducer's value can overflow (a sum of large floats): written as null, never Infinity.
    return Response(to_json(body, inf_nan_mode="null"), status, headers, media_type=JSON)


def _render(job: Job, secret: str | None) -> bytes:
    """The 202's location and body, as one value an idempotency key stores and replays."""
    view = public_job(job)
    if secret is not None:
        view["webhook"]["secret"] = secret
    return f"/jobs/{job.id}".encode() + b"\n" + to_json(view, inf_nan_mode="null")


def _submit(service: Fanout, tenant: Tenant, request: JobRequest, key: str | None) -> bytes:
    """Submit, under the idempotency key if there is one (`Fanout.submit_once`): the first
    request with it stores the job; a repeat with the same job replays the stored response."""
    try:
        if key is not None:
            return service.submit_once(tenant, request, key, _render)
        return _render(*service.submit(tenant, request))
    except readers.TooLarge as error:
        raise Problem(413, bodies.too_large(str(error))) from error


@router.post(
    "",
    status_code=202,
    response_model=JobPublic,
    openapi_extra=bodies.OPENAPI,
    responses={413: {"description": "Body too large"}, 422: {"description": "Invalid job"}},
)
async def create_job(
    request: Request,
    service: Service,
    tenant: Tenant,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    """Accept a job: `202 Accepted` means it is durably stored. The body is the job as JSON
    (items inline, or an `items_url` to read them from), or the items alone as NDJSON or CSV
    with the task and options as query parameters, read as a stream. With an
    `Idempotency-Key`, the same key and job replay the first response; a different job is a
    422, and a request still in progress with that key a 409 (until its lease runs out, if it
    died). While the store cannot write, a 503 with `Retry-After`, and nothing stored. While
    too much work waits to start, a 429 with `Retry-After` (backpressure), before the body is
    read."""
    if service.backlog_counted():
        service.admit()  # counted less than a second ago: no store read, so not off the loop
    else:
        await run_in_threadpool(service.admit)
    streamed = bodies.streamed_format(request)
    if streamed is not None:
        job_request = bodies.streamed_request(request, streamed, service.settings)
    else:
        body = await bodies.read_body(request, service.settings.max_body_bytes)
        job_request = bodies.parse(body)
    key = idempotency_key
    try:
        if streamed is not None:  # its items are read from the request on an AnyIO thread
            stored = await run_in_threadpool(_submit, service, tenant, job_request, key)
        else:
            stored = await off_loop(request, _submit, service, tenant, job_request, key)
    except InvalidJob as error:
        if streamed is not None:
            bodies.as_query_fields(error.errors)
        raise
    location, _, content = stored.partition(b"\n")
    headers = {"location": location.decode()}
    if key is not None:
        headers["idempotency-key"] = key
    return Response(content, 202, headers, media_type="application/json")


@router.get("", response_model=JobsPublic)
async def list_jobs(
    request: Request,
    service: Service,
    tenant: Tenant,
    status: JobStatus | None = None,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,100}$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """The caller's jobs, newest first."""
    page = service.list(tenant, status, cursor, limit)
    # Each job as `GET /jobs/{id}` renders it, so a job unchanged since is not rendered again.
    rendered: Bodies = request.app.state.job_bodies
    items = b",".join(rendered.of(job) for job in page.items)
    cursor_json = to_json(page.next_cursor)
    return Response(
        b'{"items":[' + items + b'],"next_cursor":' + cursor_json + b"}", media_type=JSON
    )


@router.patch("/{job_id}", response_model=JobPublic)
async def update_job(job_id: str, patch: JobPatch, service: Service, tenant: Tenant) -> Response:
    """Change `max_concurrency` while the job runs; a wider window releases chunks at once."""
    job = service.set_max_concurrency(tenant, JobId(job_id), patch.max_concurrency)
    return json_response(public_job(job))


@router.post("/{job_id}/cancel", response_model=JobPublic)
async def cancel_job(job_id: str, service: Service, tenant: Tenant) -> Response:
    """Stop the job; items without an outcome end as cancelled. 409 if it had already ended."""
    return json_response(public_job(service.cancel(tenant, JobId(job_id))))


@router.post("/{job_id}/redrive", response_model=JobPublic)
async def redrive_job(job_id: str, service: Service, tenant: Tenant) -> Response:
    """Run an ended job's failed items again (and a cancelled or timed-out job's items that never
    ran), as Step Functions' RedriveExecution: same job id, `redrive_count` up by one, counts
    moved back, attempts afresh, results in input order, a new completion event with a new
    webhook id. 409 while it runs, or when every item succeeded."""
    job = await run_in_threadpool(service.redrive, tenant, JobId(job_id))
    return json_response(public_job(job))


def _matcher(status: str) -> re.Pattern[bytes]:
    """Every line starts `{"index":N,"status":"...` (the runner writes them so)."""
    return re.compile(rb'\{"index":\d+,"status":"%b"' % status.encode())


def _having(
    service: Fanout, job: Job, start: int, limit: int, status: str
) -> tuple[list[bytes], int]:
    """Up to `limit` outcome lines with `status` from item `start` on, and the index after the
    last line read."""
    wanted = _matcher(status)
    found: list[bytes] = []
    position = start
    while position < job.total:
        text, after = service.result_text(job, position, job.total, EXPORT_PIECE_BYTES)
        for offset, line in enumerate(text.splitlines()):
            if wanted.match(line):
                found.append(line)
                if len(found) == limit:
                    return found, position + offset + 1
        position = after
    return found, position


async def _export(service: Fanout, job: Job, status: str | None) -> AsyncIterator[bytes]:
    """Every outcome (with `status`, if given) as JSON Lines, one bounded read of the store per
    piece, in the threadpool (on AWS each read is a network call). uvicorn's `send` waits while
    the client is behind, so the server holds about one piece per export, whatever its size."""
    wanted = None if status is None else _matcher(status)
    position = 0
    while position < job.total:
        text, position = await run_in_threadpool(
            service.result_text, job, position, job.total, EXPORT_PIECE_BYTES
        )
        if wanted is not None:
            text = b"".join(line for line in text.splitlines(True) if wanted.match(line))
        if text:
            yield text


@router.get(
    "/{job_id}/results",
    response_model=ResultsPublic,
    responses={200: {"content": {NDJSON: {}}}},
)
async def job_results(
    job_id: str,
    request: Request,
    service: Service,
    tenant: Tenant,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,100}$")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    format: Annotated[str | None, Query(pattern="^(json|jsonl|ndjson)$")] = None,
    status: ItemStatus | None = None,
) -> Response:
    """Outcomes in input order, whatever order the chunks finished in. Items without an outcome
    yet read `pending` (`cancelled` once the job ended). `Accept: application/x-ndjson` or
    `?format=jsonl` streams every item as JSON Lines. `status` pages through (or streams) the
    items with that outcome only (the dashboard's failed items): `next_cursor` continues the
    scan."""
    job = service.get(tenant, JobId(job_id))
    if format in ("jsonl", "ndjson") or (
        format is None and NDJSON in request.headers.get("accept", "")
    ):
        return StreamingResponse(_export(service, job, status), media_type=NDJSON)
    start = min(int(cursor or 0), job.total)  # past the end is an empty last page
    if status is not None:
        found, end = await run_in_threadpool(_having, service, job, start, limit, status)
        next_cursor = str(end) if end < job.total else None
        body = b'{"items":[' + b",".join(found) + b'],"next_cursor":' + to_json(next_cursor)
        return Response(body + b"}", media_type="application/json")
    text, end = service.result_text(job, start, limit, PAGE_BYTES)
    next_cursor = str(end) if end < job.total else None
    items = text[:-1].replace(b"\n", b",")  # JSON text never holds a raw newline
    body = b'{"items":[' + items + b'],"next_cursor":' + to_json(next_cursor) + b"}"
    return Response(body, media_type="application/json")
