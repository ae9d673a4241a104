"""`GET /jobs/{id}/results?status=...`: only the items with that outcome, paged (the
dashboard's failed items)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fanout.service import Fanout
from tests.api.conftest import run_to_end

pytestmark = pytest.mark.anyio
ITEMS = [1, -2, 3, -4, 5, 6, -7, 8]


async def pages(client: httpx.AsyncClient, job_id: str, status: str) -> list[list[int]]:
    found: list[list[int]] = []
    params: dict[str, Any] = {"status": status, "limit": 2}
    for _ in range(len(ITEMS) + 1):
        page = (await client.get(f"/jobs/{job_id}/results", params=params)).json()
        found.append([item["index"] for item in page["items"]])
        if page["next_cursor"] is None:
            return found
        params["cursor"] = page["next_cursor"]
    raise AssertionError("the cursor never ended")


async def test_failed_items_page_by_themselves_with_their_errors(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    body = {"task": "tests_api_fail_negatives", "items": ITEMS, "chunk_size": 3}
    job = await run_to_end(client, service, body)
    assert job["counts"]["failed"] == 3
    failed = await pages(client, job["id"], "failed")
    assert [index for page in failed for index in page] == [1, 3, 6]
    assert all(len(page) <= 2 for page in failed)
    first = (await client.get(f"/jobs/{job['id']}/results", params={"status": "failed"})).json()
    assert first["items"][0]["error"]["message"] == "negative item -2"
    succeeded = await pages(client, job["id"], "succeeded")
    assert [index for page in succeeded for index in page] == [0, 2, 4, 5, 7]
    assert await pages(client, job["id"], "pending") == [[]]


async def test_an_unknown_status_is_a_422_naming_it(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    job = await run_to_end(client, service, {"task": "echo", "items": [1]})
    response = await client.get(f"/jobs/{job['id']}/results", params={"status": "weird"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"].endswith("status")
