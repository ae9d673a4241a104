"""`GET /jobs/{id}`: the route clients poll.

`api/hot.py` calls `get_job` itself, past FastAPI's routing and dependency solving, whose cost
on every request was more than the read's (bench/README.md, `status`); the route registered here
documents it and answers what `HotRoutes` leaves to FastAPI (HEAD). `get_job` calls the same
`get_tenant` as every other route, so authentication and tenant isolation are theirs.

A poll mostly finds the job as it was: the SQLite store hands back the same (immutable) `Job`
while its file has not changed (`fanout.backends.sqlite.recent`), and its body is then the bytes
rendered last time (`Bodies`), not rendered again.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic_core import to_json

from fanout.api.deps import get_tenant
from fanout.api.schemas import JobPublic
from fanout.models import Job, JobId
from fanout.service import Fanout
from fanout.views import public_job

JSON = "application/json"


class Bodies:
    """The body last rendered for each job, by the `Job` it was rendered from: a Job is
    immutable, so the same object renders to the same bytes. Bounded in count and size (a job
    with large params is rendered each time); a store that reads a new object each time (AWS)
    just renders each time."""

    def __init__(self, limit: int = 512, largest: int = 16 * 1024) -> None:
        self.limit = limit
        self.largest = largest
        self.last: dict[str, tuple[Job, bytes]] = {}

    def of(self, job: Job) -> bytes:
        found = self.last.get(job.id)
        if found is not None and found[0] is job:
            return found[1]
        body = to_json(public_job(job), inf_nan_mode="null")
        if len(body) > self.largest:
            return body
        if found is None and len(self.last) >= self.limit:
            del self.last[next(iter(self.last))]  # the oldest
        self.last[job.id] = (job, body)
        return body


def install(app: FastAPI) -> None:
    """Add `GET /jobs/{job_id}` to `app`."""
    app.state.job_bodies = Bodies()
    app.router.add_api_route(
        "/jobs/{job_id}",
        get_job,
        methods=["GET"],
        response_model=JobPublic,
        tags=["jobs"],
    )


async def get_job(job_id: str, request: Request) -> Response:
    tenant = await get_tenant(request)
    state = request.app.state
    service: Fanout = state.service
    bodies: Bodies = state.job_bodies
    return Response(bodies.of(service.get(tenant, JobId(job_id))), media_type=JSON)
