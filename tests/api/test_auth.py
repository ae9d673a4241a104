"""API keys: each key is a tenant, and a tenant sees and acts only on its own jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from fanout.settings import Settings
from tests.api.conftest import PROBLEM, connect, other_settings

pytestmark = pytest.mark.anyio

A = {"authorization": "Bearer k1"}
B = {"authorization": "Bearer k2"}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    changed, service = other_settings(settings, api_keys=["k1:tenant-a", "k2:tenant-b"])
    async with connect(changed, service) as api:
        yield api


async def a_job(client: httpx.AsyncClient) -> str:
    response = await client.post("/jobs", json={"task": "echo", "items": [1]}, headers=A)
    assert response.status_code == 202
    job_id: str = response.json()["id"]
    return job_id


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer nope"},
        {"authorization": "Basic azE6"},
        {"authorization": "k1"},
        {"authorization": "Bearer "},
        {"authorization": "Bearer k1x"},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/jobs"), ("POST", "/jobs"), ("GET", "/jobs/x"), ("GET", "/jobs/x/results")],
)
async def test_a_missing_or_unknown_key_is_a_401_with_www_authenticate(
    client: httpx.AsyncClient, headers: dict[str, str], method: str, path: str
) -> None:
    response = await client.request(
        method, path, headers=headers, json={"task": "echo", "items": [1]}
    )

    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_request_refused_for_its_key_stores_no_job(client: httpx.AsyncClient) -> None:
    response = await client.post("/jobs", json={"task": "echo", "items": [1]})
    assert response.status_code == 401

    for headers in (A, B):
        assert (await client.get("/jobs", headers=headers)).json()["items"] == []


async def test_the_bearer_scheme_is_case_insensitive(client: httpx.AsyncClient) -> None:
    response = await client.get("/jobs", headers={"authorization": "bearer k1"})

    assert response.status_code == 200


async def test_a_tenant_sees_its_own_job(client: httpx.AsyncClient) -> None:
    job_id = await a_job(client)

    assert (await client.get(f"/jobs/{job_id}", headers=A)).status_code == 200
    listing = (await client.get("/jobs", headers=A)).json()
    assert [job["id"] for job in listing["items"]] == [job_id]


async def test_another_tenants_job_is_not_found(client: httpx.AsyncClient) -> None:
    job_id = await a_job(client)

    for method, path in [
        ("GET", f"/jobs/{job_id}"),
        ("GET", f"/jobs/{job_id}/results"),
        ("POST", f"/jobs/{job_id}/cancel"),
    ]:
        response = await client.request(method, path, headers=B)
        assert response.status_code == 404, (method, path)
        assert response.headers["content-type"] == PROBLEM
    patched = await client.patch(f"/jobs/{job_id}", json={"max_concurrency": 2}, headers=B)
    assert patched.status_code == 404


async def test_another_tenant_can_neither_list_cancel_nor_change_a_job(
    client: httpx.AsyncClient,
) -> None:
    job_id = await a_job(client)

    assert (await client.get("/jobs", headers=B)).json() == {"items": [], "next_cursor": None}
    await client.post(f"/jobs/{job_id}/cancel", headers=B)
    await client.patch(f"/jobs/{job_id}", json={"max_concurrency": 2}, headers=B)

    job = (await client.get(f"/jobs/{job_id}", headers=A)).json()
    assert job["status"] == "queued"
    assert job["max_concurrency"] != 2


async def test_health_tasks_and_docs_need_no_key(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/tasks", "/openapi.json", "/docs"):
        assert (await client.get(path)).status_code == 200, path
