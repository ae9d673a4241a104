"""What a job's `result` is: the reducer's value over the succeeded outputs of a job that
succeeded; nothing at all for a job that failed or was cancelled."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fanout.api.deps import DEFAULT_TENANT
from fanout.models import JobId
from fanout.service import Fanout
from tests.api.conftest import drain

pytestmark = pytest.mark.anyio


async def finished(client: httpx.AsyncClient, service: Fanout, body: dict[str, Any]) -> Any:
    response = await client.post("/jobs", json=body)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    def ended() -> bool:
        return service.get(DEFAULT_TENANT, JobId(job_id)).status.terminal

    await drain(service, ended)
    return (await client.get(f"/jobs/{job_id}")).json()


async def test_a_failed_job_has_no_result_even_with_a_reducer(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    body = {"task": "tests_api_fail_negatives", "items": [-1, -2], "reduce": "count"}

    job = await finished(client, service, body)

    assert (job["status"], job["result"]) == ("failed", None)
    assert job["counts"]["failed"] == 2


async def test_a_job_failed_by_one_item_has_no_result_either(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    body = {"task": "tests_api_fail_negatives", "items": [1, -2, 3], "reduce": "sum"}

    job = await finished(client, service, body)

    assert (job["status"], job["result"]) == ("failed", None)


async def test_within_its_tolerance_a_job_reduces_the_succeeded_outputs_only(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    body = {
        "task": "tests_api_fail_negatives",
        "items": [1, -2, 3],
        "reduce": "sum",
        "tolerated_failure_count": 1,
    }

    job = await finished(client, service, body)

    assert (job["status"], job["result"]) == ("succeeded", 8)


async def test_a_cancelled_job_has_no_result(client: httpx.AsyncClient) -> None:
    body = {"task": "tests_api_fail_negatives", "items": [1, 2], "reduce": "sum"}
    job_id = (await client.post("/jobs", json=body)).json()["id"]

    cancelled = (await client.post(f"/jobs/{job_id}/cancel")).json()

    assert (cancelled["status"], cancelled["result"]) == ("cancelled", None)
