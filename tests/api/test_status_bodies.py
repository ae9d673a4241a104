"""`GET /jobs/{id}` renders a job's body once per `Job` object (`fanout.api.routes.status.Bodies`):
the same immutable job gives the same bytes; a job that moved is rendered again."""

from __future__ import annotations

import httpx
import pytest
from msgspec import structs
from pydantic_core import from_json

from fanout.api.routes.status import Bodies
from fanout.models import JobStatus, TenantId
from fanout.service import Fanout, JobRequest
from tests.api.conftest import submit

TENANT = TenantId("default")


def test_the_same_job_gives_the_same_body_and_a_changed_one_a_new_body(service: Fanout) -> None:
    job, _ = service.submit(TENANT, JobRequest(task="echo", items=[1, 2], params={}))
    bodies = Bodies(limit=1)

    first = bodies.of(job)
    moved = structs.replace(job, status=JobStatus.CANCELLED)

    assert bodies.of(job) is first
    assert from_json(bodies.of(moved))["status"] == "cancelled"
    assert from_json(bodies.of(job))["status"] == "queued"  # one kept: rendered again


def test_a_large_body_is_rendered_each_time(service: Fanout) -> None:
    params = {"blob": "x" * 100}
    job, _ = service.submit(TENANT, JobRequest(task="echo", items=[1], params=params))
    bodies = Bodies(largest=50)

    assert bodies.of(job) is not bodies.of(job)
    assert from_json(bodies.of(job))["params"] == params


@pytest.mark.anyio
async def test_a_polled_job_shows_its_change_at_the_next_poll(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"task": "echo", "items": [1, 2, 3]})
    assert (await client.get(f"/jobs/{job['id']}")).json()["status"] == "queued"

    assert (await client.post(f"/jobs/{job['id']}/cancel")).status_code == 200

    assert (await client.get(f"/jobs/{job['id']}")).json()["status"] == "cancelled"
