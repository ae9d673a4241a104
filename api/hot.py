"""The three routes clients call most, served without FastAPI's routing.

Under the small-job load (`python -m bench load`) `fanout serve`'s event loop is the bottleneck,
and half of its time went to the layers between `Guard` and the endpoints: the router (an
included router's routes are matched twice), the request/response wrappers and the solving of
parameters and dependencies, again on every request (bench/README.md, `load`). `HotRoutes` sits
just inside `Guard`, so the host, origin, key and body checks are `Guard`'s as for every route.
It calls the endpoint itself when the request is one the endpoint takes exactly as sent:

- `GET /jobs/{id}`;
- `GET /jobs` whose `status`, `cursor` and `limit` are absent or canonical (`limit=20`, not
  `limit=020`), each at most once;
- `POST /jobs` with at most one `Idempotency-Key`, of at most 255 characters.

Every other request goes on to FastAPI, which answers it as before, so a request FastAPI would
refuse (422) is refused there, in one place. The routes stay registered with FastAPI, which
documents them (OpenAPI) and answers HEAD. An endpoint's exception is answered by the app's
exception handler for the nearest class in its MRO, as Starlette's `ExceptionMiddleware` finds
it; one with none (a bug: 500) goes on to `ServerErrorMiddleware`, as from any route.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from fanout.api.deps import get_tenant
from fanout.api.routes import jobs, status
from fanout.models import JobStatus

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Exception], Awaitable[Response]]
JOB = re.compile(r"/jobs/([^/]+)")
STATUSES = {member.value: member for member in JobStatus}
CURSOR = re.compile(r"[0-9]{1,100}")  # the route's `^\d{1,100}$`, ASCII digits only
LIMIT = re.compile(r"[1-9][0-9]{0,2}")  # 1 to 100 (the route's bounds), no leading zero
MAX_KEY = 255  # the route's `Header(max_length=255)`
IDEMPOTENCY_KEY = b"idempotency-key"


def route_path(scope: Scope) -> str:
    """The path below the app's `root_path`, as Starlette's router matches it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


def listing(scope: Scope) -> Endpoint | None:
    """`GET /jobs` with its query parameters, if each is absent or canonical."""
    given: dict[str, str] = {}
    for name, value in parse_qsl(scope["query_string"].decode("latin-1"), True):
        if name in ("status", "cursor", "limit"):
            if name in given:
                return None
            given[name] = value
    named, cursor, limit = given.get("status"), given.get("cursor"), given.get("limit", "20")
    state = None if named is None else STATUSES.get(named)
    if (
        (named is not None and state is None)
        or (cursor is not None and not CURSOR.fullmatch(cursor))
        or not LIMIT.fullmatch(limit)
        or int(limit) > 100
    ):
        return None

    async def endpoint(request: Request) -> Response:
        service = request.app.state.service
        tenant = await get_tenant(request)
        return await jobs.list_jobs(request, service, tenant, state, cursor, int(limit))

    return endpoint


def submission(scope: Scope) -> Endpoint | None:
    """`POST /jobs`, if its `Idempotency-Key` is absent or one within the route's bound."""
    keys = [value for name, value in scope["headers"] if name == IDEMPOTENCY_KEY]
    if len(keys) > 1 or (keys and len(keys[0]) > MAX_KEY):
        return None  # FastAPI says what is wrong with it (422)
    key = keys[0].decode("latin-1") if keys else None

    async def endpoint(request: Request) -> Response:
        service = request.app.state.service
        tenant = await get_tenant(request)
        return await jobs.create_job(request, service, tenant, key)

    return endpoint


def reading(job_id: str) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        return await status.get_job(job_id, request)

    return endpoint


def endpoint_for(scope: Scope) -> Endpoint | None:
    """The endpoint to call for this request, or None: FastAPI's to answer."""
    path = route_path(scope)
    method = scope["method"]
    if method == "GET":
        if path == "/jobs":
            return listing(scope)
        found = JOB.fullmatch(path)
        return reading(found[1]) if found else None
    if method == "POST" and path == "/jobs":
        return submission(scope)
    return None


def handler_for(handlers: Mapping[Any, Handler], error: Exception) -> Handler | None:
    """The app's handler for `error`'s nearest class, as `ExceptionMiddleware` looks it up;
    `Exception`'s own is `ServerErrorMiddleware`'s (the error is raised on to it)."""
    for kind in type(error).__mro__:
        if kind is Exception:
            return None
        if kind in handlers:
            return handlers[kind]
    return None


class HotRoutes:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = endpoint_for(scope) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as error:
            handler = handler_for(request.app.exception_handlers, error)
            if handler is None:
                raise
            response = await handler(request, error)
        await response(scope, receive, send)
