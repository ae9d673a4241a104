"""The body limit on every route, counted as read; the key checked before any body is read."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from fanout.settings import Settings
from tests.api.conftest import connect, other_settings
from tests.api.test_errors import no_jobs, problem

pytestmark = pytest.mark.anyio
JSON = {"content-type": "application/json"}


class Body:
    """A request body that records how much of it the server read."""

    def __init__(self, parts: int, size: int = 1000) -> None:
        self.parts = parts
        self.size = size
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"task": "echo", "items": ['
        for _ in range(self.parts):
            self.read += 1
            yield b'"' + b"x" * self.size + b'",'
        yield b"1]}"


@pytest.fixture
async def keyed(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    changed, service = other_settings(settings, api_keys=["k1"], max_body_bytes=100_000)
    async with connect(changed, service) as client:
        yield client


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong"])
async def test_a_request_without_a_valid_key_is_refused_before_its_body_is_read(
    keyed: httpx.AsyncClient, method: str, authorization: str | None
) -> None:
    body = Body(parts=1000)
    path = "/jobs" if method == "POST" else "/jobs/some-job"
    headers = {**JSON, **({"authorization": authorization} if authorization else {})}

    response = await keyed.request(method, path, content=body, headers=headers)

    problem(response, 401)
    assert body.read == 0


async def test_a_patch_over_the_limit_is_a_413_counted_as_read(keyed: httpx.AsyncClient) -> None:
    job = await keyed.post("/jobs", json={"task": "echo", "items": [1]}, headers=KEY)
    body = Body(parts=1000)

    response = await keyed.patch(f"/jobs/{job.json()['id']}", content=body, headers={**JSON, **KEY})

    problem(response, 413)
    assert body.read < 1000, "the whole body was read"


async def test_a_content_length_over_the_limit_is_a_413_on_any_route(
    keyed: httpx.AsyncClient,
) -> None:
    for method, path in [("POST", "/jobs"), ("PATCH", "/jobs/x"), ("POST", "/jobs/x/cancel")]:
        response = await keyed.request(method, path, content=b"[" * 100_001, headers=KEY)

        problem(response, 413)
    assert await no_jobs_with(keyed)


KEY = {"authorization": "Bearer k1"}


async def no_jobs_with(client: httpx.AsyncClient) -> bool:
    client.headers.update(KEY)
    return await no_jobs(client)
