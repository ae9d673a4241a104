"""`GET /jobs/{id}/events`: a job's live progress as Server-Sent Events (sse-starlette)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from fanout.api.deps import Service, Tenant
from fanout.api.problems import Problem
from fanout.api.watch import JobWatches, Watch, snapshot
from fanout.models import Job, JobId

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


class _Stream(EventSourceResponse):
    """An event stream that gives back its reservation however it ends (even unstarted)."""

    def __init__(self, content: AsyncIterator[ServerSentEvent], release: Callable[[], None]):
        super().__init__(content, ping=15, send_timeout=30)
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


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
    while True:
        latest = await watch.after(seen)
        kind = "end" if latest.terminal else "progress"
        yield ServerSentEvent(data=latest.data.decode(), event=kind, id=latest.id)
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
    return _Stream(_events(streams, tenant, job, last_event_id), release)
