"""The HTTP API as an ASGI app: `create_app(settings)`; nothing is built at import time."""

from __future__ import annotations

from fastapi import FastAPI

from api import problems
from api.routes import jobs, tasks
from fanout.service import Fanout
from fanout.settings import Settings
from fanout.wiring import build


def create_app(settings: Settings, service: Fanout | None = None) -> FastAPI:
    app = FastAPI(
        title="fanout",
        version="0.1.0",
        description="Fan a job's items out to workers, fan the results back in, in input order.",
    )
    app.state.service = service or build(settings)
    app.state.api_keys = settings.tenants_by_key()
    problems.install(app)
    app.include_router(jobs.router)
    app.include_router(tasks.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
