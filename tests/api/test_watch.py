"""The job watches behind `GET /jobs/{id}/events`: one store read per interval per job, however
many streams follow it."""

from __future__ import annotations

import time

import anyio
import pytest

from fanout.api.watch import JobWatches, Snapshot
from fanout.models import Job, JobId, TenantId
from fanout.service import Fanout, JobRequest
from fanout.settings import Settings
from fanout.wiring import build

TENANT = TenantId("default")
STREAMS = 20
INTERVAL = 0.02


class CountingService(Fanout):
    reads = 0

    def get(self, tenant: TenantId, job_id: JobId) -> Job:
        self.reads += 1
        return super().get(tenant, job_id)


@pytest.mark.anyio
async def test_twenty_streams_of_one_job_share_one_poller(settings: Settings) -> None:
    service = CountingService(build(settings).backend, settings)
    job, _ = service.submit(TENANT, JobRequest(task="echo", items=[1, 2, 3], params={}))
    watches = JobWatches(service, INTERVAL)
    ended: list[Snapshot] = []

    async def follow() -> None:
        async with watches.watch(TENANT, job) as watch:
            first = await watch.after(None)
            ended.append(await watch.after(first.id))

    started = time.monotonic()
    async with anyio.create_task_group() as streams:
        for _ in range(STREAMS):
            streams.start_soon(follow)
        await anyio.sleep(5 * INTERVAL)
        service.cancel(TENANT, job.id)
    polls = (time.monotonic() - started) / INTERVAL
    assert [s.terminal for s in ended] == [True] * STREAMS
    assert len({s.id for s in ended}) == 1
    reads = service.reads - 2  # the two of `cancel` itself
    assert reads <= polls + 2, f"{reads} reads in {polls:.0f} intervals for {STREAMS} streams"
    assert watches._watches == {}, "the last stream to leave stops the poller"
