"""Only RFC 8259 JSON in and out, options taken as written, no 500 from any query value, and
echoed values cut short."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from fanout.service import Fanout
from tests.api.conftest import drain, ended
from tests.api.test_errors import fields, no_jobs, problem

pytestmark = pytest.mark.anyio
JSON = {"content-type": "application/json"}


def strict_loads(text: str) -> Any:
    """Python's json module, refusing the NaN and Infinity it would otherwise read."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"task": "echo", "items": [1, NaN]}', "items[1]"),
        (b'{"task": "echo", "items": [{"a": [0, -Infinity]}]}', "items[0].a[1]"),
        (b'{"task": "echo", "items": [1e999]}', "items[0]"),
        (b'{"task": "echo", "items": [1], "params": {"x": NaN}}', "params.x"),
        (b'{"task": "echo", "items": [1], "timeout_seconds": 1e999}', "timeout_seconds"),
        (b'{"task": "echo", "items": [1], "timeout_seconds": Infinity}', "timeout_seconds"),
        (b'{"task": "echo", "items": [1], "tolerated_failure_percentage": NaN}',
         "tolerated_failure_percentage"),
    ],
)  # fmt: skip
async def test_nan_infinity_and_overflowing_numbers_are_a_422_naming_where(
    client: httpx.AsyncClient, body: bytes, field: str
) -> None:
    response = await client.post("/jobs", content=body, headers=JSON)

    assert fields(problem(response, 422)) == [field]
    assert await no_jobs(client)


async def test_nan_and_infinity_inside_strings_are_just_strings(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    body = b'{"task": "echo", "items": ["NaN", "Infinity", "1e999"], "params": {"e": "2e308"}}'

    response = await client.post("/jobs", content=body, headers=JSON)

    assert response.status_code == 202, response.text
    assert response.json()["params"] == {"e": "2e308"}


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("chunk_size", "5"),
        ("chunk_size", True),
        ("chunk_size", 5.0),
        ("max_attempts", True),
        ("max_concurrency", "2"),
        ("tolerated_failure_count", False),
        ("tolerated_failure_percentage", False),
        ("tolerated_failure_percentage", "50"),
        ("timeout_seconds", "30"),
    ],
)
async def test_options_are_taken_as_written_not_coerced(
    client: httpx.AsyncClient, option: str, value: Any
) -> None:
    response = await client.post("/jobs", json={"task": "echo", "items": [1], option: value})

    assert fields(problem(response, 422)) == [option]
    assert await no_jobs(client)


async def test_an_integer_is_a_number_where_a_number_goes(client: httpx.AsyncClient) -> None:
    body = {"task": "echo", "items": [1], "tolerated_failure_percentage": 5, "timeout_seconds": 9}

    response = await client.post("/jobs", json=body)

    assert response.status_code == 202, response.text
    assert response.json()["tolerated_failure_percentage"] == 5


async def test_a_patch_takes_no_string_for_an_integer(client: httpx.AsyncClient) -> None:
    job = (await client.post("/jobs", json={"task": "echo", "items": [1]})).json()

    response = await client.patch(f"/jobs/{job['id']}", json={"max_concurrency": "5"})

    assert fields(problem(response, 422)) == ["max_concurrency"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/jobs", {"cursor": "9" * 4300}),
        ("/jobs", {"limit": "9" * 5000}),
        ("/jobs", {"status": "x" * 10_000}),
        ("/jobs/{id}/results", {"cursor": "9" * 4300}),
        ("/jobs/{id}/results", {"limit": "-" + "9" * 5000}),
        ("/jobs/{id}/results", {"format": "\x00"}),
    ],
)
async def test_no_query_value_is_a_500(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    job = (await client.post("/jobs", json={"task": "echo", "items": [1]})).json()

    response = await client.get(path.format(id=job["id"]), params=params)

    body = problem(response, 422)
    assert len(response.content) < 4000, "the value was echoed back whole"
    assert fields(body)


async def test_an_unknown_task_name_is_not_echoed_back_whole(client: httpx.AsyncClient) -> None:
    response = await client.post("/jobs", json={"task": "t" * 2_000_000, "items": [1]})

    assert fields(problem(response, 422)) == ["task"]
    assert len(response.content) < 4000


async def test_an_unknown_job_id_is_not_echoed_back_whole(client: httpx.AsyncClient) -> None:
    response = await client.get("/jobs/" + "j" * 60_000)

    problem(response, 404)
    assert len(response.content) < 4000


async def test_a_reducer_value_that_overflows_reads_as_null_not_infinity(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    body = {"task": "echo", "items": [1e308, 1e308], "reduce": "sum"}
    job = (await client.post("/jobs", json=body)).json()
    await drain(service, ended(service, job["id"]))

    read = await client.get(f"/jobs/{job['id']}")
    listed = await client.get("/jobs")

    assert strict_loads(read.text)["result"] is None
    assert strict_loads(listed.text)["items"][0]["result"] is None


@pytest.mark.parametrize("line", [b"NaN", b'{"x": Infinity}', b"[1e999]"])
async def test_an_ndjson_line_with_nan_or_infinity_is_a_422_naming_the_line(
    client: httpx.AsyncClient, line: bytes
) -> None:
    response = await client.post(
        "/jobs",
        params={"task": "echo"},
        content=b"1\n" + line + b"\n3\n",
        headers={"content-type": "application/x-ndjson"},
    )

    assert [e["line"] for e in problem(response, 422)["errors"]] == [2]
    assert await no_jobs(client)
