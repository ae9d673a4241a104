"""`GET /tasks`, the OpenAPI document and its docs page, and `GET /healthz`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fanout.api.schemas import JobCreate

pytestmark = pytest.mark.anyio


async def test_tasks_lists_every_built_in_with_its_input_and_output_schema(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/tasks")

    assert response.status_code == 200
    body = response.json()
    tasks = {t["name"]: t for t in body["items"]}
    assert {"echo", "sleep", "sha256"} <= set(tasks)
    assert tasks["sha256"]["input_schema"] == {"type": "string"}
    assert tasks["sha256"]["output_schema"] == {"type": "string"}
    assert tasks["sha256"]["takes_params"] is True
    assert tasks["sleep"]["input_schema"] == {"type": "number"}
    assert tasks["sleep"]["is_async"] is True
    assert tasks["echo"]["input_schema"] == {}
    assert {"sum", "count", "min", "max"} <= set(body["reducers"])


def resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    assert isinstance(node, dict)
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


async def test_the_openapi_document_describes_the_job_request_body(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    post = document["paths"]["/jobs"]["post"]
    body_schema = post["requestBody"]["content"]["application/json"]["schema"]
    job_create = resolve(document, body_schema["$ref"])
    assert set(job_create["properties"]) == set(JobCreate.model_fields)
    assert set(job_create["required"]) == {"task"}  # and either items or items_url
    assert {"application/x-ndjson", "text/csv"} <= set(post["requestBody"]["content"])
    assert {"task", "params", "webhook_url"} <= {p["name"] for p in post["parameters"]}
    assert "202" in post["responses"]


async def test_every_reference_in_the_openapi_document_resolves(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()

    for ref in refs(document):
        resolve(document, ref)


async def test_the_openapi_document_covers_the_whole_api(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert set(paths["/jobs"]) >= {"get", "post"}
    assert set(paths["/jobs/{job_id}"]) >= {"get", "patch"}
    assert "post" in paths["/jobs/{job_id}/cancel"]
    assert "get" in paths["/jobs/{job_id}/results"]
    assert "get" in paths["/tasks"]


async def test_the_docs_page_serves_html(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "openapi.json" in response.text


async def test_healthz_says_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
