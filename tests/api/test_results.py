"""`GET /jobs/{id}/results`: outcomes in input order, paged, or streamed as JSON Lines."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from fanout.service import Fanout
from tests.api.conftest import PROBLEM, poll_once, run_to_end, submit

pytestmark = pytest.mark.anyio

NDJSON = "application/x-ndjson"
TOLERANT = {"tolerated_failure_percentage": 100}


async def all_pages(client: httpx.AsyncClient, job_id: str, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        response = await client.get(f"/jobs/{job_id}/results", params=params)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def lines(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines()]


async def test_results_page_through_every_item_in_input_order(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    items = [f"item-{n}" for n in range(23)]
    job = await run_to_end(
        client, service, {"task": "echo", "items": items, "chunk_size": 4, "max_concurrency": 3}
    )

    results = await all_pages(client, job["id"], limit=5)

    assert results == [
        {"index": n, "status": "succeeded", "output": item} for n, item in enumerate(items)
    ]


async def test_a_page_limit_that_cuts_through_a_chunk_still_pages_exactly(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    job = await run_to_end(
        client, service, {"task": "echo", "items": list(range(10)), "chunk_size": 4}
    )

    first = (await client.get(f"/jobs/{job['id']}/results", params={"limit": "3"})).json()
    second = (
        await client.get(
            f"/jobs/{job['id']}/results", params={"limit": "3", "cursor": first["next_cursor"]}
        )
    ).json()

    assert [r["index"] for r in first["items"]] == [0, 1, 2]
    assert [r["index"] for r in second["items"]] == [3, 4, 5]
    assert second["next_cursor"] is not None


async def test_failed_items_carry_their_error_type_message_and_attempts(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    job = await run_to_end(
        client,
        service,
        {"task": "tests_api_fail_negatives", "items": [1, -2, 3], "tolerated_failure_count": 5},
    )

    results = (await client.get(f"/jobs/{job['id']}/results")).json()["items"]

    assert results[0] == {"index": 0, "status": "succeeded", "output": 2}
    assert results[1] == {
        "index": 1,
        "status": "failed",
        "error": {"type": "ValueError", "message": "negative item -2", "attempts": 1},
    }
    assert results[2] == {"index": 2, "status": "succeeded", "output": 6}


async def test_the_accept_header_streams_every_item_as_json_lines(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    job = await run_to_end(
        client, service, {"task": "echo", "items": list(range(250)), "chunk_size": 7}
    )

    response = await client.get(f"/jobs/{job['id']}/results", headers={"accept": NDJSON})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(NDJSON)
    assert lines(response) == [{"index": n, "status": "succeeded", "output": n} for n in range(250)]


async def test_format_jsonl_streams_every_item_whatever_the_limit(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    job = await run_to_end(client, service, {"task": "echo", "items": list(range(150))})

    response = await client.get(
        f"/jobs/{job['id']}/results", params={"format": "jsonl", "limit": "10"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(NDJSON)
    assert [r["index"] for r in lines(response)] == list(range(150))


async def test_an_export_with_a_status_streams_only_the_items_with_that_outcome(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    items = [n if n % 7 else -n - 1 for n in range(40)]
    job = await run_to_end(
        client,
        service,
        {"task": "tests_api_fail_negatives", "items": items, "chunk_size": 6, **TOLERANT},
    )

    response = await client.get(
        f"/jobs/{job['id']}/results", params={"format": "jsonl", "status": "failed"}
    )

    assert [r["index"] for r in lines(response)] == list(range(0, 40, 7))


async def test_items_without_an_outcome_read_pending_while_the_job_runs(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    job = await submit(
        client, {"task": "echo", "items": list(range(6)), "chunk_size": 2, "max_concurrency": 1}
    )
    assert await poll_once(service)

    page = (await client.get(f"/jobs/{job['id']}/results")).json()
    streamed = await client.get(f"/jobs/{job['id']}/results", params={"format": "jsonl"})

    expected = [
        {"index": 0, "status": "succeeded", "output": 0},
        {"index": 1, "status": "succeeded", "output": 1},
        *({"index": n, "status": "pending"} for n in range(2, 6)),
    ]
    assert page == {"items": expected, "next_cursor": None}
    assert lines(streamed) == expected


async def test_items_without_an_outcome_read_cancelled_once_the_job_is_cancelled(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    job = await submit(
        client, {"task": "echo", "items": list(range(6)), "chunk_size": 2, "max_concurrency": 1}
    )
    assert await poll_once(service)
    assert (await client.post(f"/jobs/{job['id']}/cancel")).status_code == 200

    page = (await client.get(f"/jobs/{job['id']}/results")).json()

    assert [r["status"] for r in page["items"]] == ["succeeded"] * 2 + ["cancelled"] * 4


@pytest.mark.parametrize("cursor", ["2", "99", "9223372036854775808", "1" + "0" * 40])
async def test_a_cursor_past_the_end_gives_an_empty_last_page(
    client: httpx.AsyncClient, service: Fanout, cursor: str
) -> None:
    job = await run_to_end(client, service, {"task": "echo", "items": [1, 2]})

    response = await client.get(f"/jobs/{job['id']}/results", params={"cursor": cursor})

    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "params",
    [{"cursor": "abc"}, {"cursor": "-1"}, {"limit": "0"}, {"limit": "x"}, {"format": "xml"}],
)
async def test_a_bad_cursor_limit_or_format_is_a_422_naming_it(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    job = await submit(client, {"task": "echo", "items": [1]})

    response = await client.get(f"/jobs/{job['id']}/results", params=params)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert [e["field"] for e in response.json()["errors"]] == [f"query.{next(iter(params))}"]


async def test_results_of_an_unknown_job_are_a_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/jobs/nope/results", headers={"accept": NDJSON})

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
