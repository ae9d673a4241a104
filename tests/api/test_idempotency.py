"""`Idempotency-Key` on `POST /jobs`, as the IETF draft describes it: a replay returns the stored
response, a reused key with another body is a 422, a key still in progress a 409."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import httpx
import pytest

from fanout.jobspec import JobCreate
from fanout.models import JobId, TenantId
from fanout.service import Fanout, new_job_id
from fanout.settings import Settings
from tests.api.conftest import PROBLEM, connect, other_settings

pytestmark = pytest.mark.anyio

JOB = {"task": "echo", "items": [1, 2, 3]}
LEASE = 10.0  # the settings' idempotency_lease


def encoded(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


async def post(
    client: httpx.AsyncClient, body: dict[str, Any], key: str, **headers: str
) -> httpx.Response:
    return await client.post(
        "/jobs",
        content=encoded(body),
        headers={"content-type": "application/json", "idempotency-key": key, **headers},
    )


async def job_ids(client: httpx.AsyncClient, **headers: str) -> list[str]:
    listing = (await client.get("/jobs", headers=headers)).json()
    return [job["id"] for job in listing["items"]]


async def test_the_same_key_and_body_replay_the_first_response(
    client: httpx.AsyncClient,
) -> None:
    first = await post(client, JOB, "key-1")
    again = await post(client, JOB, "key-1")

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotency-key"] == "key-1"
    assert await job_ids(client) == [first.json()["id"]]


async def test_a_replay_returns_the_generated_webhook_secret_of_the_first_response(
    client: httpx.AsyncClient,
) -> None:
    body = {**JOB, "webhook": {"url": "http://127.0.0.1:9/hook"}}

    first = (await post(client, body, "key-1")).json()
    again = (await post(client, body, "key-1")).json()

    assert first["webhook"]["secret"].startswith("whsec_")
    assert again == first


async def test_the_same_key_with_another_body_is_a_422_and_stores_nothing_new(
    client: httpx.AsyncClient,
) -> None:
    first = await post(client, JOB, "key-1")

    response = await post(client, {**JOB, "items": [4]}, "key-1")

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert await job_ids(client) == [first.json()["id"]]


def claim_as_a_request_would(service: Fanout, body: dict[str, Any], at: float) -> JobId:
    """Claim key-1 for `body` as a request that then died (or still runs) would have, `at`."""
    with service.take_in(JobCreate.model_validate(body).to_request()) as submission:
        fingerprint = submission.fingerprint()
    claim = service.backend.idempotency.claim(
        TenantId("default"), "key-1", fingerprint, new_job_id(), at, LEASE
    )
    assert claim.response is None
    return claim.job_id


async def test_a_key_still_in_progress_is_a_409(client: httpx.AsyncClient, service: Fanout) -> None:
    claim_as_a_request_would(service, JOB, time.time())

    response = await post(client, JOB, "key-1")

    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    assert await job_ids(client) == []


async def test_a_key_held_past_its_lease_by_a_request_that_died_is_taken_over_by_its_retry(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    bound = claim_as_a_request_would(service, JOB, time.time() - LEASE - 1)

    retried = await post(client, JOB, "key-1")
    again = await post(client, JOB, "key-1")

    assert retried.status_code == again.status_code == 202
    assert retried.json()["id"] == bound  # the job the key was bound to, created once
    assert again.json() == retried.json()
    assert await job_ids(client) == [bound]


async def test_the_same_json_with_other_spacing_and_key_order_replays_the_first_response(
    client: httpx.AsyncClient,
) -> None:
    body = {**JOB, "params": {"a": 1, "b": [1, 2]}}
    first = await post(client, body, "key-1")

    again = await client.post(
        "/jobs",
        content=b'{ "params" : {"b":[1,  2], "a":1},\n "items": [1,2,3], "task": "echo" }',
        headers={"content-type": "application/json", "idempotency-key": "key-1"},
    )

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert await job_ids(client) == [first.json()["id"]]


async def test_different_keys_create_different_jobs(client: httpx.AsyncClient) -> None:
    first = await post(client, JOB, "key-1")
    second = await post(client, JOB, "key-2")

    assert first.json()["id"] != second.json()["id"]
    assert len(await job_ids(client)) == 2


async def test_a_key_whose_request_was_refused_can_be_used_again(
    client: httpx.AsyncClient,
) -> None:
    refused = await post(client, {"task": "no-such-task", "items": [1]}, "key-1")
    assert refused.status_code == 422

    accepted = await post(client, JOB, "key-1")

    assert accepted.status_code == 202
    assert await job_ids(client) == [accepted.json()["id"]]


async def test_keys_are_scoped_to_the_tenant(settings: Settings) -> None:
    changed, service = other_settings(settings, api_keys=["k1:tenant-a", "k2:tenant-b"])
    async with connect(changed, service) as client:
        a = await post(client, JOB, "shared-key", authorization="Bearer k1")
        b = await post(client, {**JOB, "items": [9]}, "shared-key", authorization="Bearer k2")

        assert a.status_code == b.status_code == 202
        assert a.json()["id"] != b.json()["id"]
        assert await job_ids(client, authorization="Bearer k1") == [a.json()["id"]]
        assert await job_ids(client, authorization="Bearer k2") == [b.json()["id"]]


async def test_concurrent_requests_with_one_key_create_one_job(
    client: httpx.AsyncClient,
) -> None:
    responses: list[httpx.Response] = []

    async def send() -> None:
        responses.append(await post(client, JOB, "key-1"))

    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(send)

    assert {r.status_code for r in responses} <= {202, 409}
    accepted = {r.json()["id"] for r in responses if r.status_code == 202}
    assert len(accepted) == 1
    assert await job_ids(client) == list(accepted)
    assert all(r.headers["content-type"] == PROBLEM for r in responses if r.status_code == 409)
