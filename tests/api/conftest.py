"""The HTTP API driven in-process over httpx's ASGI transport. Jobs finish when a test drains
the queue itself with the chunk worker's `poll_once`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest

from fanout import task
from fanout.api.app import create_app
from fanout.models import JobId
from fanout.service import Fanout
from fanout.settings import Settings
from fanout.wiring import build
from fanout.workers import chunk_worker

PROBLEM = "application/problem+json"


@task(name="tests_api_fail_negatives", max_attempts=1)
def fail_negatives(item: int) -> int:
    """Doubles its item and fails the negative ones: outcomes of both kinds."""
    if item < 0:
        raise ValueError(f"negative item {item}")
    return item * 2


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def connect(settings: Settings, service: Fanout, **headers: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(settings, service))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost", headers=headers)


@pytest.fixture
async def client(settings: Settings, service: Fanout) -> AsyncIterator[httpx.AsyncClient]:
    async with connect(settings, service) as api:
        yield api


async def poll_once(service: Fanout) -> bool:
    """The worker's step, off the event loop: a worker runs async tasks in a loop of its own."""
    return await anyio.to_thread.run_sync(chunk_worker.poll_once, service)


async def drain(service: Fanout, until: Callable[[], bool], timeout: float = 10.0) -> None:
    """Run queued chunks until `until()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await poll_once(service)


def ended(service: Fanout, job_id: str) -> Callable[[], bool]:
    def check() -> bool:
        job = service.backend.jobs.get_job(JobId(job_id))
        return job is not None and job.status.terminal

    return check


async def submit(client: httpx.AsyncClient, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = await client.post("/jobs", json=body, **kwargs)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


async def run_to_end(
    client: httpx.AsyncClient, service: Fanout, body: dict[str, Any]
) -> dict[str, Any]:
    """Submit the job, run it to its end, and return it as `GET /jobs/{id}` then shows it."""
    job = await submit(client, body)
    await drain(service, ended(service, job["id"]))
    done: dict[str, Any] = (await client.get(f"/jobs/{job['id']}")).json()
    return done


def other_settings(settings: Settings, **changes: Any) -> tuple[Settings, Fanout]:
    """The shared settings with some changed, and a service on them (same data directory)."""
    changed = settings.model_copy(update=changes)
    return changed, build(changed)
