"""Requests a web page could make: bodies only of the types a route takes (415), in keyless mode
only loopback Host names (421: DNS rebinding), no state change from another origin (403: CSRF),
and CORS only for configured origins."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fanout.settings import Settings
from tests.api.conftest import connect, other_settings
from tests.api.test_errors import no_jobs, problem

pytestmark = pytest.mark.anyio
JOB = b'{"task": "echo", "items": [1]}'


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
        "application/jsonx",
    ],
)
async def test_a_job_body_that_is_not_declared_json_is_a_415(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    request = client.build_request("POST", "/jobs", content=JOB)
    assert "content-type" not in request.headers  # httpx sets none for raw content
    if content_type is not None:
        request.headers["content-type"] = content_type

    response = await client.send(request)

    assert "application/json" in problem(response, 415)["detail"]
    assert await no_jobs(client)


async def test_json_with_a_charset_parameter_is_json(client: httpx.AsyncClient) -> None:
    headers = {"content-type": "Application/JSON; charset=utf-8"}

    response = await client.post("/jobs", content=JOB, headers=headers)

    assert response.status_code == 202, response.text


async def test_a_patch_body_that_is_not_json_is_a_415(client: httpx.AsyncClient) -> None:
    job = (await client.post("/jobs", json={"task": "echo", "items": [1]})).json()

    response = await client.patch(
        f"/jobs/{job['id']}",
        content=b'{"max_concurrency": 2}',
        headers={"content-type": "text/plain"},
    )

    problem(response, 415)
    assert (await client.get(f"/jobs/{job['id']}")).json()["max_concurrency"] == 16


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000", "10.0.0.1"])
async def test_without_keys_a_foreign_host_name_is_a_421(
    client: httpx.AsyncClient, host: str
) -> None:
    posted = await client.post("/jobs", content=JOB, headers={"host": host, **json_type()})
    read = await client.get("/jobs", headers={"host": host})

    problem(posted, 421)
    problem(read, 421)
    assert await no_jobs(client)


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1:8000", "[::1]:8000", "a.localhost"])
async def test_without_keys_loopback_host_names_are_served(
    client: httpx.AsyncClient, host: str
) -> None:
    response = await client.post("/jobs", content=JOB, headers={"host": host, **json_type()})

    assert response.status_code == 202, response.text


async def test_an_allowed_host_name_is_served_without_keys(settings: Settings) -> None:
    changed, service = other_settings(settings, allowed_hosts=["fanout.internal"])
    async with connect(changed, service) as client:
        response = await client.get("/jobs", headers={"host": "fanout.internal:8000"})

    assert response.status_code == 200


async def test_with_keys_any_host_name_is_served(settings: Settings) -> None:
    changed, service = other_settings(settings, api_keys=["k1"])
    async with connect(changed, service, authorization="Bearer k1") as client:
        response = await client.get("/jobs", headers={"host": "fanout.example.com"})

    assert response.status_code == 200


def json_type() -> dict[str, str]:
    return {"content-type": "application/json"}


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://attacker.example"},
        {"origin": "http://attacker.example", "sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site", "origin": "http://other.localhost"},
        {"origin": "null"},
    ],
)
async def test_a_state_change_from_another_origin_is_a_403(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    job = (await client.post("/jobs", json={"task": "echo", "items": [1]})).json()

    posted = await client.post("/jobs", content=JOB, headers={**headers, **json_type()})
    cancelled = await client.post(f"/jobs/{job['id']}/cancel", headers=headers)

    problem(posted, 403)
    problem(cancelled, 403)
    assert (await client.get(f"/jobs/{job['id']}")).json()["status"] != "cancelled"


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://localhost"},
        {"sec-fetch-site": "same-origin", "origin": "http://localhost"},
        {"sec-fetch-site": "none"},
        {},
    ],
)
async def test_same_origin_and_non_browser_requests_change_state(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/jobs", content=JOB, headers={**headers, **json_type()})

    assert response.status_code == 202, response.text


async def test_reads_from_another_origin_get_no_cors_headers_by_default(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/jobs", headers={"origin": "http://attacker.example"})
    preflight = await preflight_from(client, "http://attacker.example")

    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in preflight.headers


@pytest.fixture
async def cors_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    changed, service = other_settings(settings, cors_origins=["http://app.example"])
    async with connect(changed, service) as client:
        yield client


async def test_a_configured_origin_may_call_the_api_from_a_page(
    cors_client: httpx.AsyncClient,
) -> None:
    preflight = await preflight_from(cors_client, "http://app.example")
    posted = await cors_client.post(
        "/jobs", content=JOB, headers={"origin": "http://app.example", **json_type()}
    )
    other = await preflight_from(cors_client, "http://attacker.example")

    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://app.example"
    assert posted.status_code == 202, posted.text
    assert posted.headers["access-control-allow-origin"] == "http://app.example"
    assert "location" in posted.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in other.headers


async def preflight_from(client: httpx.AsyncClient, origin: str) -> httpx.Response:
    headers: dict[str, Any] = {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
    }
    return await client.options("/jobs", headers=headers)
