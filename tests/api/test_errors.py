"""Every refusal is an `application/problem+json` (RFC 9457) naming what is wrong, never a 500,
and a refused submission stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fanout.service import Fanout
from fanout.settings import Settings
from tests.api.conftest import PROBLEM, connect, drain, ended, other_settings

JSON = "application/json"

pytestmark = pytest.mark.anyio


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str)
    return body


def fields(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body["errors"]]


async def no_jobs(client: httpx.AsyncClient) -> bool:
    listing: dict[str, Any] = (await client.get("/jobs")).json()
    return listing == {"items": [], "next_cursor": None}


async def test_an_unknown_task_is_a_422_naming_the_task_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/jobs", json={"task": "no-such-task", "items": [1]})

    body = problem(response, 422)
    assert fields(body) == ["task"]
    assert "echo" in body["errors"][0]["known"]
    assert await no_jobs(client)


async def test_items_that_do_not_match_the_task_input_are_a_422_listing_their_indices(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/jobs", json={"task": "sha256", "items": ["a", 1, "b", None]})

    body = problem(response, 422)
    assert [error["index"] for error in body["errors"]] == [1, 3]
    assert fields(body) == ["items[1]", "items[3]"]
    assert await no_jobs(client)


async def test_an_unknown_field_is_a_422_naming_it(client: httpx.AsyncClient) -> None:
    response = await client.post("/jobs", json={"task": "echo", "items": [1], "colour": "red"})

    assert fields(problem(response, 422)) == ["colour"]
    assert await no_jobs(client)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": [1]}, "task"),
        ({"task": "echo"}, "items"),
        ({"task": "echo", "items": 5}, "items"),
        ({"task": "echo", "items": [1], "chunk_size": 0}, "chunk_size"),
        ({"task": "echo", "items": [1], "max_concurrency": -1}, "max_concurrency"),
        (
            {"task": "echo", "items": [1], "tolerated_failure_percentage": 101},
            "tolerated_failure_percentage",
        ),
        ({"task": "echo", "items": [1], "params": [1]}, "params"),
        ({"task": "echo", "items": [1], "reduce": "no-such-reducer"}, "reduce"),
        ({"task": "echo", "items": [1], "webhook": {}}, "webhook.url"),
        ({"task": "echo", "items": [1], "webhook": {"url": "ftp://x/"}}, "webhook.url"),
        (
            {"task": "echo", "items": [1], "webhook": {"url": "http://127.0.0.1/", "secret": "x"}},
            "webhook.secret",
        ),
        (
            {
                "task": "echo",
                "items": [1],
                "webhook": {"url": "http://127.0.0.1/", "secret": "whsec_c2hvcnQ="},
            },
            "webhook.secret",
        ),
    ],
)
async def test_an_invalid_field_is_a_422_naming_it(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/jobs", json=body)

    assert fields(problem(response, 422)) == [field]
    assert await no_jobs(client)


@pytest.mark.parametrize("content", [b"{", b"", b"\xff\xfe", b'{"task": "echo",}'])
async def test_a_body_that_is_not_json_is_a_400(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.post(
        "/jobs", content=content, headers={"content-type": "application/json"}
    )

    assert problem(response, 400)["title"] == "Body is not JSON"
    assert await no_jobs(client)


@pytest.mark.parametrize("content", [b"[1, 2]", b'"echo"', b"null"])
async def test_a_body_that_is_not_a_json_object_is_a_422(
    client: httpx.AsyncClient, content: bytes
) -> None:
    response = await client.post(
        "/jobs", content=content, headers={"content-type": "application/json"}
    )

    problem(response, 422)
    assert await no_jobs(client)


async def test_too_many_items_is_a_422_naming_items(settings: Settings) -> None:
    changed, service = other_settings(settings, max_items=3)
    async with connect(changed, service) as client:
        response = await client.post("/jobs", json={"task": "echo", "items": [1, 2, 3, 4]})

        assert fields(problem(response, 422)) == ["items"]
        assert await no_jobs(client)


@pytest.fixture
async def small_bodies(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    changed, service = other_settings(settings, max_body_bytes=1000)
    async with connect(changed, service) as client:
        yield client


async def test_a_body_over_the_limit_is_a_413(small_bodies: httpx.AsyncClient) -> None:
    body = {"task": "echo", "items": ["x" * 100] * 20}

    response = await small_bodies.post("/jobs", json=body)

    problem(response, 413)
    assert await no_jobs(small_bodies)


async def test_a_chunked_body_over_the_limit_is_a_413(small_bodies: httpx.AsyncClient) -> None:
    async def parts() -> AsyncIterator[bytes]:
        yield b'{"task": "echo", "items": ['
        for _ in range(50):
            yield b'"' + b"x" * 100 + b'",'
        yield b"1]}"

    request = small_bodies.build_request(
        "POST", "/jobs", content=parts(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"

    response = await small_bodies.send(request)

    problem(response, 413)
    assert await no_jobs(small_bodies)


async def test_a_body_under_the_limit_is_accepted(small_bodies: httpx.AsyncClient) -> None:
    response = await small_bodies.post("/jobs", json={"task": "echo", "items": [1, 2]})

    assert response.status_code == 202


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/jobs/no-such-job"),
        ("POST", "/jobs/no-such-job/cancel"),
        ("GET", "/jobs/no-such-job/results"),
        ("GET", "/no-such-path"),
    ],
)
async def test_an_unknown_job_or_path_is_a_404(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    problem(await client.request(method, path), 404)


async def test_patching_an_unknown_job_is_a_404(client: httpx.AsyncClient) -> None:
    problem(await client.patch("/jobs/no-such-job", json={"max_concurrency": 2}), 404)


async def test_a_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    problem(await client.delete("/jobs"), 405)


@pytest.mark.parametrize(
    "params",
    [{"cursor": "abc"}, {"limit": "0"}, {"limit": "1000"}, {"status": "sleeping"}],
)
async def test_a_bad_listing_query_is_a_422_naming_the_parameter(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    body = problem(await client.get("/jobs", params=params), 422)

    assert fields(body) == [f"query.{next(iter(params))}"]


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1/hook",
        "http://" + "a" * 64 + ".example/hook",
        "http://a..b/hook",
        "http://127.0.0.1:99999/hook",
        "http:///hook",
        "http://exa\x00mple.com/hook",
        "http://127.0.0.1/a\x01b",
    ],
)
async def test_a_malformed_webhook_url_is_a_422_naming_it(
    client: httpx.AsyncClient, url: str
) -> None:
    response = await client.post(
        "/jobs", json={"task": "echo", "items": [1], "webhook": {"url": url}}
    )

    assert fields(problem(response, 422)) == ["webhook.url"]
    assert await no_jobs(client)


async def test_an_idempotency_key_over_255_characters_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/jobs", json={"task": "echo", "items": [1]}, headers={"idempotency-key": "k" * 256}
    )

    problem(response, 422)
    assert await no_jobs(client)


def nested_body(depth: int) -> bytes:
    """A job whose second item is `depth` arrays deep."""
    nested = "[" * depth + "]" * depth
    return b'{"task": "echo", "items": [1, ' + nested.encode() + b"]}"


async def test_an_item_nested_as_deep_as_json_is_read_back_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/jobs", content=nested_body(200), headers={"content-type": "application/json"}
    )

    assert response.status_code == 202, response.text


@pytest.mark.parametrize("depth", [201, 255, 256, 300])
async def test_an_item_nested_deeper_than_json_is_read_back_is_a_422_naming_it(
    client: httpx.AsyncClient, depth: int
) -> None:
    """Past ~200 levels the items could be stored but never read back to run (pydantic_core
    reads JSON 200 deep, writes it 255 deep): refused at submit, by index, nothing stored."""
    response = await client.post(
        "/jobs", content=nested_body(depth), headers={"content-type": "application/json"}
    )

    body = problem(response, 422)
    assert fields(body) == ["items[1]"]
    assert "nested too deeply" in body["errors"][0]["message"]
    assert await no_jobs(client)


async def test_a_too_deep_item_in_chunks_of_1024_items_fails_alone_and_the_job_ends(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    """Chunks of whole intake batches (1024 items) are cut without re-reading their items, so
    there a too-deep item is accepted: it fails alone when its chunk runs, the rest run, and
    the job ends (before, the whole chunk failed to be read, again and again)."""
    nested = ("[" * 220 + "]" * 220).encode()
    items = b",".join([b"1"] * 5 + [nested] + [b"2"] * 2042)
    content = b'{"task": "echo", "chunk_size": 1024, "items": [' + items + b"]}"
    created = await client.post("/jobs", content=content, headers={"content-type": JSON})
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]

    await drain(service, ended(service, job_id))

    job = (await client.get(f"/jobs/{job_id}")).json()
    assert (job["counts"]["succeeded"], job["counts"]["failed"]) == (2047, 1)
    failed = (await client.get(f"/jobs/{job_id}/results", params={"status": "failed"})).json()
    [item] = failed["items"]
    assert item["index"] == 5 and "nested too deeply" in item["error"]["message"]


async def test_a_body_nested_thousands_deep_is_a_400_saying_so(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/jobs", content=nested_body(5000), headers={"content-type": "application/json"}
    )

    assert "nested too deeply" in problem(response, 400)["detail"]
    assert await no_jobs(client)
