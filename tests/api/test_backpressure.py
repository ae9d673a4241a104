"""Backpressure: while the backlog of unstarted chunks or undelivered webhooks is at its bound,
POST /jobs answers 429 with Retry-After and stores nothing; the bound and the backlog are shown
by /readyz and /metrics; once the work drains, jobs are accepted again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from fanout.service import Fanout
from fanout.settings import Settings
from tests.api.conftest import connect, drain, ended, other_settings
from tests.api.test_errors import problem

pytestmark = pytest.mark.anyio
THREE_CHUNKS = {"task": "echo", "items": [1, 2, 3], "chunk_size": 1}


@pytest.fixture
def bounded(settings: Settings) -> tuple[Settings, Fanout]:
    # A wait other than the default 5 s, so an answer that ignores the setting is seen.
    return other_settings(
        settings, max_unstarted_chunks=3, max_undelivered_webhooks=1, backpressure_retry_after=7
    )


@pytest.fixture
async def client(bounded: tuple[Settings, Fanout]) -> AsyncIterator[httpx.AsyncClient]:
    async with connect(*bounded) as api:
        yield api


async def jobs(client: httpx.AsyncClient) -> int:
    return len((await client.get("/jobs")).json()["items"])


async def test_past_the_unstarted_chunks_bound_a_job_is_a_429_with_retry_after(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.post("/jobs", json=THREE_CHUNKS)).status_code == 202
    await client.get("/readyz")  # counts the backlog afresh

    refused = await client.post("/jobs", json={"task": "echo", "items": [1]})

    body = problem(refused, 429)
    assert refused.headers["retry-after"] == "7"
    assert "3 chunks" in body["detail"] and "Retry after 7 s" in body["detail"]
    assert await jobs(client) == 1


async def test_the_bound_and_the_backlog_are_shown_by_readyz_and_metrics(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/jobs", json=THREE_CHUNKS)

    ready = (await client.get("/readyz")).json()
    metrics = (await client.get("/metrics")).text

    assert ready["backlog"]["unstarted_chunks"] == 3
    assert ready["backlog_bounds"] == {"unstarted_chunks": 3, "undelivered_webhooks": 1}
    assert "fanout_max_unstarted_chunks 3.0" in metrics
    assert "fanout_unstarted_chunks 3.0" in metrics


async def test_once_the_chunks_have_run_jobs_are_accepted_again(
    client: httpx.AsyncClient, bounded: tuple[Settings, Fanout]
) -> None:
    _, service = bounded
    job = (await client.post("/jobs", json=THREE_CHUNKS)).json()
    await client.get("/readyz")
    assert (await client.post("/jobs", json=THREE_CHUNKS)).status_code == 429

    await drain(service, ended(service, job["id"]))
    await client.get("/readyz")

    assert (await client.post("/jobs", json=THREE_CHUNKS)).status_code == 202


async def test_past_the_undelivered_webhooks_bound_a_job_is_a_429(
    client: httpx.AsyncClient, bounded: tuple[Settings, Fanout]
) -> None:
    _, service = bounded
    hook = {"url": "http://127.0.0.1:9/hook"}  # nothing listens: the event stays undelivered
    job = await client.post("/jobs", json={"task": "echo", "items": [1], "webhook": hook})
    await drain(service, ended(service, job.json()["id"]))
    await client.get("/readyz")

    refused = await client.post("/jobs", json={"task": "echo", "items": [1]})

    assert "1 webhooks" in problem(refused, 429)["detail"]
    assert refused.headers["retry-after"] == "7"


async def test_a_burst_between_two_counts_is_held_to_the_bound(client: httpx.AsyncClient) -> None:
    statuses = [
        (await client.post("/jobs", json={"task": "echo", "items": [1, 2], "chunk_size": 1}))
        for _ in range(4)
    ]

    assert [r.status_code for r in statuses] == [202, 202, 429, 429]
