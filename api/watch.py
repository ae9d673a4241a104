"""Watching jobs for live progress: one poller per watched job, shared by all of its streams.

However many streams (dashboard tabs, `fanout watch`, `Client.wait`) follow a job, the store
reads that job once per `stream_poll_interval`; each stream wakes when the snapshot changes. So
events are coalesced to at most one per interval, and the store's cost grows with the number
of jobs watched, not the number of watchers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from pydantic_core import to_json

from fanout.errors import JobNotFound
from fanout.models import Job, JobId, TenantId
from fanout.service import Fanout
from fanout.views import public_job

log = logging.getLogger("fanout.api.watch")


@dataclass(frozen=True)
class Snapshot:
    """A job as a stream sends it: `id` names its state (the SSE event id, which a client
    sends back as Last-Event-ID); `data` is the job as `GET /jobs/{id}` shows it."""

    id: str
    data: bytes
    terminal: bool


def snapshot(job: Job) -> Snapshot:
    view = public_job(job)
    counts = view["counts"]
    # Counts only grow between redrives and a status changes at most a few times, so these
    # parts name a state; a redrive moves counts back but raises its count.
    state = (
        view.get("redrive_count", 0),
        counts["succeeded"],
        counts["failed"],
        counts["running"],
        job.status.value,
    )
    return Snapshot(
        ".".join(map(str, state)), to_json(view, inf_nan_mode="null"), job.status.terminal
    )


class Watch:
    """The latest snapshot of one job and the streams waiting for the next."""

    def __init__(self) -> None:
        self.latest: Snapshot | None = None
        self.subscribers = 0
        self.poller: asyncio.Task[None] | None = None
        self._changed = anyio.Event()

    def publish(self, new: Snapshot) -> None:
        if self.latest is not None and new.id == self.latest.id:
            return
        self.latest = new
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def after(self, seen: str | None) -> Snapshot:
        """The first snapshot whose id is not `seen`, as soon as there is one."""
        while self.latest is None or self.latest.id == seen:
            await self._changed.wait()
        return self.latest


class JobWatches:
    def __init__(self, service: Fanout, interval: float) -> None:
        self.service = service
        self.interval = interval
        self._watches: dict[tuple[TenantId, JobId], Watch] = {}

    @asynccontextmanager
    async def watch(self, tenant: TenantId, job: Job) -> AsyncIterator[Watch]:
        """The job's shared watch, polled while anyone holds it."""
        key = (tenant, job.id)
        watch = self._watches.setdefault(key, Watch())
        watch.subscribers += 1
        if watch.poller is None or watch.poller.done():
            # A poller still running has a snapshot at least as new as the caller's read.
            watch.publish(snapshot(job))
            watch.poller = asyncio.create_task(self._poll(tenant, job.id, watch))
        try:
            yield watch
        finally:
            watch.subscribers -= 1
            if watch.subscribers == 0:
                del self._watches[key]
                watch.poller.cancel()

    async def _poll(self, tenant: TenantId, job_id: JobId, watch: Watch) -> None:
        """Read the job every interval until it ends (a redrive restarts the poller through a
        new subscription). A failing read is logged and retried: streams just see no change."""
        while True:
            await anyio.sleep(self.interval)
            try:
                job = await anyio.to_thread.run_sync(self.service.get, tenant, job_id)
            except JobNotFound:
                return  # expired under the stream: it ends at its lifetime cap
            except Exception:
                log.exception("reading job %s for its event streams failed", job_id)
                continue
            watch.publish(snapshot(job))
            if job.status.terminal:
                return
