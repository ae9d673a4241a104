"""`POST /jobs/{id}/redrive` in-process on the embedded backend: only failed (or never run)
items run again, counts move back, results stay in input order, a new event id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from fanout import task
from fanout.service import Fanout
from tests.api.conftest import PROBLEM, drain, ended, run_to_end, submit

pytestmark = pytest.mark.anyio
RUNS: list[int] = []
FIXED: set[str] = set()


@task(name="tests_api_fixable", max_attempts=1)
def fixable(item: int, params: dict[str, Any]) -> int:
    """Fails the items in `params["fail"]` until the test "fixes" them; remembers each run."""
    RUNS.append(item)
    if item in params["fail"] and params["key"] not in FIXED:
        raise ValueError(f"item {item} is broken")
    return item * 10


async def redriven(client: httpx.AsyncClient, service: Fanout, job_id: str) -> dict[str, Any]:
    response = await client.post(f"/jobs/{job_id}/redrive")
    assert response.status_code == 200, response.text
    await drain(service, ended(service, job_id))
    job: dict[str, Any] = (await client.get(f"/jobs/{job_id}")).json()
    return job


async def test_only_the_failed_items_run_again_and_the_results_keep_input_order(
    client: httpx.AsyncClient, service: Fanout, tmp_path: Path
) -> None:
    RUNS.clear()
    params = {"fail": [1, 2, 5, 9], "key": str(tmp_path)}
    body = {"task": "tests_api_fixable", "items": list(range(10)), "params": params}
    job = await run_to_end(client, service, body | {"chunk_size": 4})
    assert (job["status"], job["counts"]["failed"], job["redrive_count"]) == ("failed", 4, 0)
    RUNS.clear()
    FIXED.add(str(tmp_path))

    again = await redriven(client, service, job["id"])
    assert sorted(RUNS) == [1, 2, 5, 9]
    assert again["status"] == "succeeded" and again["redrive_count"] == 1
    assert again["counts"] | {"succeeded": 10} == again["counts"]
    assert again["counts"]["failed"] == 0
    results = (await client.get(f"/jobs/{job['id']}/results", params={"limit": 100})).json()
    assert [(r["index"], r["output"]) for r in results["items"]] == [(i, i * 10) for i in range(10)]
    assert again["usage"]["chunks"] > job["usage"]["chunks"]


async def test_a_redrive_that_fails_again_can_be_redriven_again(
    client: httpx.AsyncClient, service: Fanout, tmp_path: Path
) -> None:
    params = {"fail": [0, 3], "key": str(tmp_path)}
    body = {"task": "tests_api_fixable", "items": [0, 1, 2, 3], "params": params}
    job = await run_to_end(client, service, body | {"chunk_size": 1})
    once = await redriven(client, service, job["id"])
    assert (once["status"], once["counts"]["failed"], once["redrive_count"]) == ("failed", 2, 1)
    FIXED.add(str(tmp_path))
    twice = await redriven(client, service, job["id"])
    assert (twice["status"], twice["counts"]["succeeded"], twice["redrive_count"]) == (
        "succeeded",
        4,
        2,
    )


async def test_a_cancelled_job_runs_the_items_that_never_ran(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    job = await submit(
        client, {"task": "echo", "items": list(range(8)), "chunk_size": 2, "max_concurrency": 1}
    )
    await client.post(f"/jobs/{job['id']}/cancel")
    cancelled = (await client.get(f"/jobs/{job['id']}")).json()
    assert cancelled["counts"]["cancelled"] == 8
    again = await redriven(client, service, job["id"])
    assert again["status"] == "succeeded" and again["counts"]["succeeded"] == 8
    outputs = (await client.get(f"/jobs/{job['id']}/results")).json()["items"]
    assert [r["output"] for r in outputs] == list(range(8))


async def test_409_while_running_or_with_nothing_to_redrive_and_404_for_another_tenant(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    running = await submit(client, {"task": "echo", "items": [1, 2]})
    response = await client.post(f"/jobs/{running['id']}/redrive")
    assert (response.status_code, response.headers["content-type"]) == (409, PROBLEM)
    assert response.json()["title"] == "Job is still running"
    await drain(service, ended(service, running["id"]))
    done = await client.post(f"/jobs/{running['id']}/redrive")
    assert (done.status_code, done.json()["title"]) == (409, "Nothing to redrive")
    missing = await client.post(f"/jobs/{'0' * 28}/redrive")
    assert missing.status_code == 404
