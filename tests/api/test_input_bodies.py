"""`POST /jobs` with its items elsewhere than inline: an NDJSON or CSV body (the task and options
as query parameters) read as a stream, or an `items_url` file under the input directory."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from fanout import task
from fanout.models import JobId
from fanout.service import Fanout
from fanout.settings import Settings
from tests.api.conftest import PROBLEM, connect, drain, ended, other_settings

pytestmark = pytest.mark.anyio
NDJSON = {"content-type": "application/x-ndjson"}
CSV = {"content-type": "text/csv"}


class Order(BaseModel):
    sku: str
    quantity: int


@task(name="tests_api_order_total")
def order_total(order: Order, params: dict[str, Any]) -> int:
    return order.quantity * int(params.get("price", 1))


async def results(client: httpx.AsyncClient, service: Fanout, job_id: str) -> list[Any]:
    await drain(service, ended(service, job_id))
    page = (await client.get(f"/jobs/{job_id}/results", params={"limit": 10_000})).json()
    return [item.get("output", item.get("error")) for item in page["items"]]


async def job_count(client: httpx.AsyncClient) -> int:
    return len((await client.get("/jobs")).json()["items"])


def lines(*items: Any) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


async def test_an_ndjson_body_is_a_job_s_items_with_the_options_in_the_query(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    orders = [{"sku": f"s{i}", "quantity": i} for i in range(250)]
    query = {"task": "tests_api_order_total", "params": '{"price": 3}', "chunk_size": "100"}

    response = await client.post("/jobs", params=query, content=lines(*orders), headers=NDJSON)

    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["counts"]["total"], job["chunk_size"], job["params"]) == (250, 100, {"price": 3})
    assert await results(client, service, job["id"]) == [3 * i for i in range(250)]


async def test_an_ndjson_body_is_read_as_it_arrives(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    async def body() -> AsyncIterator[bytes]:
        for start in range(0, 5000, 1000):
            yield lines(*range(start, start + 1000))

    response = await client.post("/jobs", params={"task": "echo"}, content=body(), headers=NDJSON)

    assert response.status_code == 202, response.text
    assert await results(client, service, response.json()["id"]) == list(range(5000))


async def test_a_csv_body_is_one_item_a_row(client: httpx.AsyncClient, service: Fanout) -> None:
    body = b"sku,quantity\r\na,2\r\nb,5\r\n"

    response = await client.post(
        "/jobs", params={"task": "tests_api_order_total"}, content=body, headers=CSV
    )

    assert response.status_code == 202, response.text
    assert await results(client, service, response.json()["id"]) == [2, 5]


async def test_a_webhook_comes_as_two_query_parameters(client: httpx.AsyncClient) -> None:
    query = {"task": "echo", "webhook_url": "http://127.0.0.1:9/hook"}

    job = (await client.post("/jobs", params=query, content=lines(1), headers=NDJSON)).json()

    assert job["webhook"]["url"] == "http://127.0.0.1:9/hook"
    assert job["webhook"]["secret"].startswith("whsec_")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "task"),
        ({"task": "echo", "chunk_size": "many"}, "chunk_size"),
        ({"task": "echo", "params": "{nope"}, "params"),
        ({"task": "echo", "items_url": "x.jsonl"}, "items_url"),
        ({"task": "echo", "surprise": "1"}, "surprise"),
        ({"task": "echo", "webhook_url": "ftp://x"}, "webhook_url"),
        ({"task": "no-such-task"}, "task"),
    ],
)
async def test_bad_query_options_are_a_422_naming_the_parameter(
    client: httpx.AsyncClient, query: dict[str, str], field: str
) -> None:
    response = await client.post("/jobs", params=query, content=lines(1, 2), headers=NDJSON)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert field in [error["field"] for error in response.json()["errors"]]
    assert await job_count(client) == 0


async def test_a_bad_line_is_a_422_naming_it_and_stores_nothing(client: httpx.AsyncClient) -> None:
    body = lines(*range(3000)) + b"{not json\n" + lines(*range(10))

    response = await client.post("/jobs", params={"task": "echo"}, content=body, headers=NDJSON)

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "items", "line": 3001, "message": response.json()["errors"][0]["message"]}
    ]
    assert await job_count(client) == 0


async def test_items_of_the_wrong_type_are_named_by_index(client: httpx.AsyncClient) -> None:
    body = lines(*([{"sku": "a", "quantity": 1}] * 2000), {"sku": "b"}, {"quantity": 2})

    response = await client.post(
        "/jobs", params={"task": "tests_api_order_total"}, content=body, headers=NDJSON
    )

    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [
        (2000, "items[2000].quantity"),
        (2001, "items[2001].sku"),
    ]
    assert await job_count(client) == 0


async def test_a_stream_past_the_item_limit_is_refused_part_way(
    settings: Settings, service: Fanout
) -> None:
    limited, limited_service = other_settings(settings, max_items=1500)
    async with connect(limited, limited_service) as client:
        response = await client.post(
            "/jobs", params={"task": "echo"}, content=lines(*range(5000)), headers=NDJSON
        )

        assert response.status_code == 422
        assert response.json()["errors"] == [{"field": "items", "message": "at most 1500 items"}]
        assert await job_count(client) == 0


async def test_a_stream_past_the_byte_limit_is_a_413(settings: Settings, service: Fanout) -> None:
    limited, limited_service = other_settings(settings, max_input_bytes=10_000)
    async with connect(limited, limited_service) as client:
        response = await client.post(
            "/jobs", params={"task": "echo"}, content=lines(*range(5000)), headers=NDJSON
        )

        assert response.status_code == 413
        assert response.headers["content-type"] == PROBLEM
        assert await job_count(client) == 0


async def test_a_streamed_job_with_an_idempotency_key_is_stored_once(
    client: httpx.AsyncClient,
) -> None:
    headers = {**NDJSON, "idempotency-key": "stream-1"}
    post = {"params": {"task": "echo"}, "headers": headers}

    first = await client.post("/jobs", content=lines(1, 2, 3), **post)  # type: ignore[arg-type]  # the shared keywords
    again = await client.post("/jobs", content=b"1\n2\n\n3\n", **post)  # type: ignore[arg-type]
    other = await client.post("/jobs", content=lines(1, 2), **post)  # type: ignore[arg-type]

    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 422
    assert await job_count(client) == 1


@pytest.fixture
def inputs(settings: Settings) -> Path:
    settings.inputs.mkdir(parents=True)
    return settings.inputs


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("orders.jsonl", lines({"sku": "a", "quantity": 2}, {"sku": "b", "quantity": 5})),
        ("orders.json", json.dumps([{"sku": "a", "quantity": 2}, {"sku": "b", "quantity": 5}])),
        ("orders.csv", "sku,quantity\na,2\nb,5\n"),
    ],
)
async def test_items_url_reads_a_file_under_the_input_directory(
    client: httpx.AsyncClient, service: Fanout, inputs: Path, name: str, content: str | bytes
) -> None:
    path = inputs / "in" / name
    path.parent.mkdir()
    path.write_bytes(content.encode() if isinstance(content, str) else content)

    for url in (f"in/{name}", path.as_uri()):
        body = {"task": "tests_api_order_total", "items_url": url}
        response = await client.post("/jobs", json=body)

        assert response.status_code == 202, response.text
        assert await results(client, service, response.json()["id"]) == [2, 5]


async def test_items_format_reads_a_file_whose_name_says_none(
    client: httpx.AsyncClient, service: Fanout, inputs: Path
) -> None:
    (inputs / "export.txt").write_bytes(lines(7, 8))

    body = {"task": "echo", "items_url": "export.txt", "items_format": "jsonl"}
    response = await client.post("/jobs", json=body)

    assert response.status_code == 202, response.text
    assert await results(client, service, response.json()["id"]) == [7, 8]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"task": "echo"}, "give the items, or an items_url"),
        ({"task": "echo", "items": [1], "items_url": "a.jsonl"}, "not both"),
        ({"task": "echo", "items_url": "missing.jsonl"}, "no such file"),
        ({"task": "echo", "items_url": "../../etc/passwd.json"}, "not a file under"),
        ({"task": "echo", "items_url": "file:///etc/passwd"}, "not a file under"),
        ({"task": "echo", "items_url": "s3://bucket/a.json"}, "reads file: URLs"),
        ({"task": "echo", "items_url": "notes.txt"}, "give items_format"),
        ({"task": "echo", "items_url": "bad.jsonl"}, "not JSON"),
    ],
)
async def test_an_items_url_that_cannot_be_read_is_a_422_naming_it(
    client: httpx.AsyncClient, inputs: Path, body: dict[str, Any], message: str
) -> None:
    (inputs / "notes.txt").write_bytes(b"1\n")
    (inputs / "bad.jsonl").write_bytes(b"1\n2\nthree\n")

    response = await client.post("/jobs", json=body)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    [error] = response.json()["errors"]
    assert error["field"] in ("items", "items_url")
    assert message in error["message"]
    assert await job_count(client) == 0


async def test_an_items_url_line_error_names_the_line(
    client: httpx.AsyncClient, inputs: Path
) -> None:
    (inputs / "bad.jsonl").write_bytes(b"1\n2\nthree\n")

    response = await client.post("/jobs", json={"task": "echo", "items_url": "bad.jsonl"})

    [error] = response.json()["errors"]
    assert (error["field"], error["line"]) == ("items_url", 3)


async def test_an_input_file_over_the_byte_limit_is_refused(
    settings: Settings, service: Fanout
) -> None:
    limited, limited_service = other_settings(settings, max_input_bytes=1000)
    limited.inputs.mkdir(parents=True)
    (limited.inputs / "big.jsonl").write_bytes(lines(*range(1000)))
    async with connect(limited, limited_service) as client:
        response = await client.post("/jobs", json={"task": "echo", "items_url": "big.jsonl"})

        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "items_url"
        assert service.backend.jobs.get_job(JobId("none")) is None
        assert await job_count(client) == 0


async def test_a_streamed_body_may_be_larger_than_a_json_one(
    settings: Settings, service: Fanout
) -> None:
    small, small_service = other_settings(settings, max_body_bytes=2_000)
    items = list(range(2_000))
    async with connect(small, small_service) as client:
        streamed = await client.post(
            "/jobs", params={"task": "echo"}, content=lines(*items), headers=NDJSON
        )
        whole = await client.post("/jobs", json={"task": "echo", "items": items})

        assert streamed.status_code == 202, streamed.text
        assert streamed.json()["counts"]["total"] == 2_000
        assert whole.status_code == 413
