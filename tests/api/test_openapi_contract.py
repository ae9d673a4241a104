"""The OpenAPI document as a contract: operation ids a generated client names its functions by,
the Bearer scheme, the new job's Location, timestamps as date-time, this server's own defaults,
and request examples that succeed as they stand ("Try it out")."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fanout.settings import Settings
from tests.api.conftest import connect, other_settings

pytestmark = pytest.mark.anyio
KEY = {"authorization": "Bearer k1"}


@pytest.fixture
async def keyed(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    changed, service = other_settings(
        settings, api_keys=["k1:tenant-a"], default_max_concurrency=7, default_max_attempts=4
    )
    async with connect(changed, service, **KEY) as api:
        yield api


async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    served: dict[str, Any] = response.json()
    return served


def operations(served: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {op["operationId"]: op for path in served["paths"].values() for op in path.values()}


async def test_every_operation_has_an_explicit_camel_case_id(keyed: httpx.AsyncClient) -> None:
    ids = set(operations(await document(keyed)))

    assert {
        "createJob",
        "listJobs",
        "getJob",
        "updateJob",
        "cancelJob",
        "getJobResults",
        "getJobEvents",
        "listTasks",
        "getHealth",
        "getReadiness",
        "getMetrics",
    } <= ids
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z]+)*", id_) for id_ in ids), ids


async def test_the_bearer_scheme_is_required_except_on_the_health_routes(
    keyed: httpx.AsyncClient,
) -> None:
    served = await document(keyed)

    scheme = served["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert served["security"] == [{"bearerAuth": []}]
    ops = operations(served)
    assert [ops[name]["security"] for name in ("getHealth", "getReadiness", "getMetrics")] == [
        [],
        [],
        [],
    ]
    assert "security" not in ops["createJob"], "the document-wide requirement applies"


async def test_without_keys_a_key_is_optional(client: httpx.AsyncClient) -> None:
    assert (await document(client))["security"] == [{"bearerAuth": []}, {}]


async def test_a_new_job_says_where_it_is_and_timestamps_are_date_times(
    keyed: httpx.AsyncClient,
) -> None:
    served = await document(keyed)

    accepted = operations(served)["createJob"]["responses"]["202"]
    assert accepted["headers"]["Location"]["schema"]["type"] == "string"
    job = served["components"]["schemas"]["JobPublic"]["properties"]
    assert job["created_at"]["format"] == "date-time"
    assert {"type": "string", "format": "date-time"} in job["finished_at"]["anyOf"]


async def test_field_descriptions_give_this_servers_defaults(keyed: httpx.AsyncClient) -> None:
    fields = (await document(keyed))["components"]["schemas"]["JobCreate"]["properties"]

    assert "default 7 (FANOUT_DEFAULT_MAX_CONCURRENCY)" in fields["max_concurrency"]["description"]
    assert "default 4 (FANOUT_DEFAULT_MAX_ATTEMPTS)" in fields["max_attempts"]["description"]


async def test_every_request_example_succeeds_as_it_stands(keyed: httpx.AsyncClient) -> None:
    ops = operations(await document(keyed))
    examples = ops["createJob"]["requestBody"]["content"]["application/json"]["examples"]
    assert examples

    created = []
    for example in examples.values():
        response = await keyed.post("/jobs", json=example["value"])
        assert response.status_code == 202, response.text
        created.append(response.json()["id"])
    patches = ops["updateJob"]["requestBody"]["content"]["application/json"]["examples"]
    for example in patches.values():
        response = await keyed.patch(f"/jobs/{created[0]}", json=example["value"])
        assert response.status_code == 200, response.text
