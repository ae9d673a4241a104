"""The HTTP API as an ASGI app: `create_app(settings)`; nothing is built at import time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from msgspec import structs
from pydantic_core import to_json

from fanout import __version__, readers
from fanout.api import blocking, docs, openapi, problems
from fanout.api.error_responses import declare_errors
from fanout.api.hot import HotRoutes
from fanout.api.keys import ApiKeys, load_api_keys
from fanout.api.middleware import Guard
from fanout.api.routes import events, jobs, metrics, status, tasks, ui, uploads
from fanout.api.schemas import JobCreate
from fanout.api.watch import JobWatches
from fanout.service import Fanout
from fanout.settings import Settings
from fanout.wiring import build


class FanoutAPI(FastAPI):
    def openapi(self) -> dict[str, Any]:
        """FastAPI's document plus `JobCreate` and the models it uses: `POST /jobs` reads its body
        itself (to enforce the size limit), so FastAPI does not collect that schema."""
        if self.openapi_schema is not None:
            return self.openapi_schema
        document = super().openapi()  # cached as self.openapi_schema, so changed in place
        schema = JobCreate.model_json_schema(ref_template="#/components/schemas/{model}")
        components = document.setdefault("components", {}).setdefault("schemas", {})
        components.update(schema.pop("$defs", {}))
        components["JobCreate"] = schema
        openapi.describe(document, self.state.settings, keyed=not self.state.api_keys.open)
        declare_errors(document)
        return document


def guard(app: FastAPI, settings: Settings, keys: ApiKeys) -> None:
    """Host, origin, key and body checks before any route runs (`fanout.api.middleware`); CORS,
    outside them, only for the configured origins."""
    app.add_middleware(
        Guard,
        keys=keys,
        max_body_bytes=settings.max_body_bytes,
        streamed=dict.fromkeys(readers.MEDIA_TYPES, settings.max_input_bytes),
        document=app.openapi,
        allowed_hosts=settings.allowed_hosts,
        trusted_origins=settings.cors_origins,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH"],
            allow_headers=["authorization", "content-type", "idempotency-key", "last-event-id"],
            expose_headers=["location", "retry-after", "idempotency-key"],
            max_age=600,
        )


def create_app(
    settings: Settings,
    service: Fanout | None = None,
    api_keys: ApiKeys | None = None,
    live_workers: Callable[[], int] | None = None,
) -> FastAPI:
    """`live_workers`: how many worker processes are alive (`fanout serve`'s supervisor), for
    `/metrics`."""
    app = FanoutAPI(
        title="fanout",
        version=__version__,
        description="Fan a job's items out to workers, fan the results back in, in input order.",
        docs_url=None,  # docs.mount serves both pages from installed assets
        redoc_url=None,
        generate_unique_id_function=openapi.operation_id,
    )
    app.state.settings = settings
    app.state.service = service or build(settings)
    app.state.api_keys = api_keys or load_api_keys(settings)
    app.state.live_workers = live_workers
    app.state.blocking = blocking.pool()
    app.state.streams = events.Streams(
        JobWatches(app.state.service, settings.stream_poll_interval),
        settings.max_streams_per_peer,
        settings.stream_max_seconds,
    )
    problems.install(app)
    app.add_middleware(HotRoutes)  # inside the guard: its checks come first
    guard(app, settings, app.state.api_keys)
    status.install(app)
    app.include_router(jobs.router)
    app.include_router(events.router)
    app.include_router(tasks.router)
    app.include_router(metrics.router)
    app.include_router(uploads.router)
    ui.mount(app)
    docs.mount(app)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "Not ready"}})
    def readyz() -> Response:
        """Readiness: the store takes a write now. 200 with the backlog, or 503 problem+json
        (with the reason) while it cannot write: a full disk, a failing database."""
        service: Fanout = app.state.service
        try:
            backlog = service.ready()
        except Exception as error:
            raise problems.Problem(
                503,
                f"The store cannot write: {error}",
                title="Not ready",
                headers={"retry-after": str(settings.unavailable_retry_after)},
            ) from error
        body = {
            "status": "ready",
            "backlog": structs.asdict(backlog),
            # Backpressure: POST /jobs answers 429 while either count is at its bound.
            "backlog_bounds": {
                "unstarted_chunks": settings.max_unstarted_chunks,
                "undelivered_webhooks": settings.max_undelivered_webhooks,
            },
        }
        return Response(to_json(body), media_type="application/json")

    return app
