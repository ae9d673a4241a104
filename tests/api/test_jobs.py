"""Submitting, reading, listing, cancelling and re-windowing jobs over HTTP."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from fanout.service import Fanout
from tests.api.conftest import PROBLEM, poll_once, run_to_end, submit

pytestmark = pytest.mark.anyio

JOB_FIELDS = {
    "id",
    "task",
    "status",
    "counts",
    "created_at",
    "started_at",
    "finished_at",
    "params",
    "chunk_size",
    "max_concurrency",
    "max_attempts",
    "tolerated_failure_count",
    "tolerated_failure_percentage",
    "timeout_seconds",
    "reduce",
    "result",
    "error",
    "output",
    "redrive_count",
    "usage",
    "webhook",
}


async def test_submitting_a_job_answers_202_with_its_location_and_the_job_as_get_shows_it(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/jobs", json={"task": "echo", "items": [1, 2, 3]})

    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json"
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}"
    fetched = await client.get(response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json() == job


async def test_a_new_job_shows_every_documented_field(client: httpx.AsyncClient) -> None:
    job = await submit(
        client,
        {
            "task": "sha256",
            "items": ["a", "b", "c", "d"],
            "params": {"rounds": 2},
            "chunk_size": 2,
            "max_concurrency": 1,
            "max_attempts": 5,
            "tolerated_failure_count": 1,
            "tolerated_failure_percentage": 50,
            "timeout_seconds": 30,
            "reduce": "count",
        },
    )

    assert set(job) == JOB_FIELDS
    assert job["output"] is None  # the embedded backend serves results from its file only
    assert job["task"] == "sha256"
    assert job["status"] == "queued"
    assert job["counts"] == {
        "total": 4,
        "succeeded": 0,
        "failed": 0,
        "pending": 4,
        "running": 0,
        "cancelled": 0,
    }
    assert datetime.fromisoformat(job["created_at"]).tzinfo is not None
    assert job["started_at"] is None
    assert job["finished_at"] is None
    assert job["params"] == {"rounds": 2}
    assert job["chunk_size"] == 2
    assert job["max_concurrency"] == 1
    assert job["max_attempts"] == 5
    assert job["tolerated_failure_count"] == 1
    assert job["tolerated_failure_percentage"] == 50
    assert job["timeout_seconds"] == 30
    assert job["reduce"] == "count"
    assert job["result"] is None
    assert job["error"] is None
    assert job["webhook"] is None


async def test_a_finished_job_shows_its_counts_times_and_reduced_value(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    job = await run_to_end(
        client, service, {"task": "echo", "items": [1, 2, 3, 4], "chunk_size": 3, "reduce": "sum"}
    )

    assert job["status"] == "succeeded"
    assert job["counts"] == {
        "total": 4,
        "succeeded": 4,
        "failed": 0,
        "pending": 0,
        "running": 0,
        "cancelled": 0,
    }
    assert job["result"] == 10
    assert job["error"] is None
    created = datetime.fromisoformat(job["created_at"])
    started = datetime.fromisoformat(job["started_at"])
    finished = datetime.fromisoformat(job["finished_at"])
    assert created <= started <= finished


async def test_a_running_job_shows_running_and_its_counts_so_far(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    job = await submit(
        client, {"task": "echo", "items": list(range(4)), "chunk_size": 2, "max_concurrency": 1}
    )
    assert await poll_once(service)

    running = (await client.get(f"/jobs/{job['id']}")).json()

    assert running["status"] == "running"
    assert running["started_at"] is not None
    assert running["counts"]["succeeded"] == 2
    assert running["counts"]["pending"] == 2


async def test_failures_within_tolerance_succeed_with_the_failed_count_shown(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    job = await run_to_end(
        client,
        service,
        {"task": "tests_api_fail_negatives", "items": [1, -2, 3], "tolerated_failure_count": 1},
    )

    assert job["status"] == "succeeded"
    assert job["counts"]["succeeded"] == 2
    assert job["counts"]["failed"] == 1


async def test_failures_over_tolerance_fail_the_job_with_an_error(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    job = await run_to_end(
        client, service, {"task": "tests_api_fail_negatives", "items": [1, -2, 3]}
    )

    assert job["status"] == "failed"
    assert job["counts"]["failed"] == 1
    assert "1 of 3" in job["error"]


async def test_an_empty_job_succeeds_at_once(client: httpx.AsyncClient) -> None:
    job = await submit(client, {"task": "echo", "items": []})

    assert job["status"] == "succeeded"
    assert job["counts"]["total"] == 0


async def test_jobs_are_listed_newest_first_and_paged_with_a_cursor(
    client: httpx.AsyncClient,
) -> None:
    ids = [(await submit(client, {"task": "echo", "items": [n]}))["id"] for n in range(5)]

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = await client.get("/jobs", params=params)
        assert page.status_code == 200
        body = page.json()
        assert set(body) == {"items", "next_cursor"}
        assert len(body["items"]) <= 2
        seen += [job["id"] for job in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert seen == ids[::-1]
    assert pages == 3


async def test_a_listed_job_is_the_job_get_shows_as_it_is_now(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    """Listed jobs are rendered as `GET /jobs/{id}` renders them (and reused while unchanged):
    a job that moved since the last listing is listed as it is now."""
    done = await submit(client, {"task": "echo", "items": [1]})
    waiting = await submit(client, {"task": "echo", "items": [2]})
    before = (await client.get("/jobs")).json()["items"]
    assert [job["status"] for job in before] == ["queued", "queued"]

    assert (await client.post(f"/jobs/{waiting['id']}/cancel")).status_code == 200
    listed = (await client.get("/jobs")).json()["items"]

    assert [job["id"] for job in listed] == [waiting["id"], done["id"]]
    assert listed[0]["status"] == "cancelled" and listed[1] == before[1]
    for job in listed:
        assert job == (await client.get(f"/jobs/{job['id']}")).json()


async def test_a_listing_cursor_past_either_end_is_answered_with_a_page(
    client: httpx.AsyncClient,
) -> None:
    job = await submit(client, {"task": "echo", "items": [1]})

    oldest = await client.get("/jobs", params={"cursor": "0"})
    huge = await client.get("/jobs", params={"cursor": "1" + "0" * 40})

    assert oldest.status_code == huge.status_code == 200
    assert oldest.json() == {"items": [], "next_cursor": None}
    assert [j["id"] for j in huge.json()["items"]] == [job["id"]]


async def test_the_listing_filters_by_status(client: httpx.AsyncClient, service: Fanout) -> None:
    done = await run_to_end(client, service, {"task": "echo", "items": [1]})
    waiting = await submit(client, {"task": "echo", "items": [2]})
    cancelled = await submit(client, {"task": "echo", "items": [3]})
    assert (await client.post(f"/jobs/{cancelled['id']}/cancel")).status_code == 200

    async def listed(status: str) -> list[str]:
        page = await client.get("/jobs", params={"status": status})
        return [job["id"] for job in page.json()["items"]]

    assert await listed("succeeded") == [done["id"]]
    assert await listed("queued") == [waiting["id"]]
    assert await listed("cancelled") == [cancelled["id"]]
    assert await listed("failed") == []


async def test_cancelling_a_job_ends_it_with_its_unfinished_items_cancelled(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    job = await submit(
        client, {"task": "echo", "items": list(range(6)), "chunk_size": 2, "max_concurrency": 1}
    )
    assert await poll_once(service)

    response = await client.post(f"/jobs/{job['id']}/cancel")

    assert response.status_code == 200
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["finished_at"] is not None
    assert cancelled["counts"]["succeeded"] == 2
    assert cancelled["counts"]["cancelled"] == 4
    assert cancelled["counts"]["pending"] == 0
    assert (await client.get(f"/jobs/{job['id']}")).json() == cancelled
    while await poll_once(service):
        pass
    assert (await client.get(f"/jobs/{job['id']}")).json() == cancelled


async def test_cancelling_a_finished_job_is_a_409_that_changes_nothing(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    job = await run_to_end(client, service, {"task": "echo", "items": [1]})

    response = await client.post(f"/jobs/{job['id']}/cancel")

    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    assert (await client.get(f"/jobs/{job['id']}")).json() == job


async def test_patching_max_concurrency_widens_the_window_of_a_waiting_job(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    job = await submit(
        client, {"task": "echo", "items": list(range(4)), "chunk_size": 1, "max_concurrency": 1}
    )

    response = await client.patch(f"/jobs/{job['id']}", json={"max_concurrency": 4})

    assert response.status_code == 200
    assert response.json()["max_concurrency"] == 4
    assert (await client.get(f"/jobs/{job['id']}")).json()["max_concurrency"] == 4
    assert len(service.backend.queue.receive(10, 60.0)) == 4


async def test_patching_a_finished_job_is_a_409(client: httpx.AsyncClient, service: Fanout) -> None:
    job = await run_to_end(client, service, {"task": "echo", "items": [1]})

    response = await client.patch(f"/jobs/{job['id']}", json={"max_concurrency": 3})

    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM


async def test_patching_an_invalid_max_concurrency_is_a_422_naming_it(
    client: httpx.AsyncClient,
) -> None:
    job = await submit(client, {"task": "echo", "items": [1]})

    response = await client.patch(f"/jobs/{job['id']}", json={"max_concurrency": 0})

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert [e["field"] for e in response.json()["errors"]] == ["max_concurrency"]


async def test_an_async_task_job_runs_to_the_end_through_the_api(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    job = await run_to_end(client, service, {"task": "sleep", "items": [0, 0.001, 0]})

    assert job["status"] == "succeeded"
    assert job["counts"]["succeeded"] == 3
