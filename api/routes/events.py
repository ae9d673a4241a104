"""`GET /jobs/{id}/events`: a job's live progress as Server-Sent Events (sse-starlette)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Annotated

import anyio
from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from fanout.api.deps import Service, Tenant
from fanout.api.problems import Problem
from fanout.api.watch import JobWatches, Watch, snapshot
from fanout.models import Job, JobId

if TYPE_CHECKING:
    from sse_starlette import ServerSentEvent

router = APIRouter(prefix="/jobs", tags=["jobs"])
EVENT_STREAM = "text/event-stream"


class Streams:
    """Open streams per client address, bounded so one peer cannot hold every poller and
    socket; and the shared job watches they read."""

    def __init__(self, watches: JobWatches, per_peer: int, lifetime: float) -> None:
        self.watches = watches
        self.per_peer = per_peer
        self.lifetime = lifetime
        self.open: Counter[str] = Counter()

    def reserve(self, peer: str) -> Callable[[], None]:
        if self.open[peer] >= self.per_peer:
            raise Problem(
                429,
                f"At most {self.per_peer} event streams per client address are open at once.",
                headers={"retry-after": "5"},
            )
        self.open[peer] += 1

        def release() -> None:
            self.open[peer] -= 1
            if not self.open[peer]:
                del self.open[peer]

        return release


async def _events(
    streams: Streams, tenant: Tenant, job: Job, seen: str | None
) -> AsyncIterator[ServerSentEvent]:
    """`progress` each time the job changes, then one `end`, then the stream closes. After its
    lifetime the stream closes early; the client reopens it with Last-Event-ID."""
    async with streams.watches.watch(tenant, job) as watch:
        with anyio.move_on_after(streams.lifetime):
            async for event in _changes(watch, seen):
                yield event


async def _changes(watch: Watch, seen: str | None) -> AsyncIterator[ServerSentEvent]:
    from fanout.api import sse

    while True:
        latest = await watch.after(seen)
        kind = "end" if latest.terminal else "progress"
        yield sse.event(latest.data.decode(), kind, latest.id)
        if latest.terminal:
            return
        seen = latest.id


@router.get(
    "/{job_id}/events",
    responses={
        200: {"content": {EVENT_STREAM: {}}, "description": "The job's events"},
        204: {"description": "The job had already ended when the stream was last read"},
    },
)
async def job_events(
    job_id: str,
    request: Request,
    service: Service,
    tenant: Tenant,
    last_event_id: Annotated[str | None, Header(max_length=100)] = None,
) -> Response:
    """Server-Sent Events: `progress` (the job, as `GET /jobs/{id}` shows it) whenever its counts
    or status change, at most a few a second; then `end` (the ended job), then the stream
    closes. Reopened with `Last-Event-ID`, it resumes after that event: nothing is repeated,
    and a client that already saw `end` gets `204 No Content`, which stops a browser's
    EventSource from reconnecting."""
    job = await run_in_threadpool(service.get, tenant, JobId(job_id))
    if job.status.terminal and last_event_id == snapshot(job).id:
        return Response(status_code=204)
    streams: Streams = request.app.state.streams
    release = streams.reserve(request.client.host if request.client else "")
    from fanout.api import sse  # sse-starlette, when a stream opens: see fanout.api.sse

    return sse.ReservedStream(_events(streams, tenant, job, last_event_id), release)
