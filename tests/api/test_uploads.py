"""`POST /uploads` on one machine: a signed URL on the server itself takes the file into the
input directory, and `POST /jobs` names it as `items_url` (the same steps as on AWS, where the
URL is S3's: tests/aws/test_uploads_on_moto.py)."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from fanout.errors import UploadRefused
from fanout.service import Fanout
from fanout.settings import Settings
from tests.api.conftest import PROBLEM, connect, drain, ended, other_settings

pytestmark = pytest.mark.anyio
KEY = {"authorization": "Bearer k1"}


async def upload(client: httpx.AsyncClient, format: str, body: bytes) -> dict[str, Any]:
    created = await client.post("/uploads", json={"format": format})
    assert created.status_code == 201, created.text
    target: dict[str, Any] = created.json()
    assert target["method"] == "PUT"
    put = await client.put(target["upload_url"], content=body, headers=target["headers"])
    assert put.status_code == 201, put.text
    return target


async def test_an_uploaded_file_becomes_a_jobs_items(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    target = await upload(client, "jsonl", b"".join(b"%d\n" % i for i in range(25)))
    assert target["items_url"].startswith("uploads/")
    assert target["upload_url"].startswith(
        f"{client.base_url}/uploads/".replace("//uploads", "/uploads")
    )

    job = await client.post("/jobs", json={"task": "echo", "items_url": target["items_url"]})
    assert job.status_code == 202, job.text
    await drain(service, ended(service, job.json()["id"]))
    results = await client.get(f"/jobs/{job.json()['id']}/results", params={"limit": 100})
    assert [r["output"] for r in results.json()["items"]] == list(range(25))


async def test_the_upload_url_needs_no_api_key_but_creating_one_does(
    settings: Settings,
) -> None:
    keyed, service = other_settings(settings, api_keys=["k1:tenant-a"])
    async with connect(keyed, service) as api:
        assert (await api.post("/uploads", json={"format": "csv"})).status_code == 401
        created = await api.post("/uploads", json={"format": "csv"}, headers=KEY)
        target = created.json()
        put = await api.put(target["upload_url"], content=b"a,b\n1,2\n", headers=target["headers"])
        assert put.status_code == 201
        assert (keyed.inputs / target["items_url"]).read_bytes() == b"a,b\n1,2\n"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda url: re.sub(
            r"signature=(.)", lambda m: f"signature={'1' if m[1] == '0' else '0'}", url
        ),
        lambda url: url.replace("expires=", "expires=1"),
        lambda url: url.replace(".jsonl?", ".csv?"),
    ],
    ids=["signature", "expiry", "name"],
)
async def test_a_tampered_upload_url_is_refused_and_writes_nothing(
    client: httpx.AsyncClient, settings: Settings, tamper: Any
) -> None:
    target = (await client.post("/uploads", json={"format": "jsonl"})).json()
    put = await client.put(tamper(target["upload_url"]), content=b"1\n")
    assert put.status_code == 403
    assert put.headers["content-type"] == PROBLEM
    assert not any((settings.inputs / "uploads").glob("*.*"))


async def test_an_expired_upload_url_is_refused(client: httpx.AsyncClient, service: Fanout) -> None:
    receiver = service.backend.uploads
    assert receiver is not None
    target = receiver.create("0" * 32 + ".jsonl", "application/x-ndjson", time.time() - 1)
    put = await client.put(target.url, content=b"1\n")
    assert put.status_code == 403
    assert "expired" in put.json()["detail"]


async def test_an_upload_url_takes_one_file(client: httpx.AsyncClient, settings: Settings) -> None:
    target = await upload(client, "json", b"[1, 2]")
    again = await client.put(target["upload_url"], content=b"[3]", headers=target["headers"])
    assert again.status_code == 403
    assert (settings.inputs / target["items_url"]).read_bytes() == b"[1, 2]"


async def test_a_file_over_the_input_limit_is_a_413_and_leaves_nothing(settings: Settings) -> None:
    small, service = other_settings(settings, max_input_bytes=100)
    async with connect(small, service) as api:
        target = (await api.post("/uploads", json={"format": "jsonl"})).json()
        put = await api.put(target["upload_url"], content=b"1\n" * 100)
        assert put.status_code == 413
        assert not (small.inputs / target["items_url"]).exists()
        assert [p.name for p in (small.inputs / "uploads").iterdir()] == []


@pytest.mark.parametrize("body", [{}, {"format": "xml"}, {"format": "jsonl", "size": 1}])
async def test_a_bad_upload_request_is_a_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await client.post("/uploads", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM


async def test_a_body_too_large_for_post_jobs_points_at_uploads(settings: Settings) -> None:
    small, service = other_settings(settings, max_body_bytes=50)
    async with connect(small, service) as api:
        response = await api.post("/jobs", json={"task": "echo", "items": list(range(100))})
    assert response.status_code == 413
    assert "POST /uploads" in response.json()["detail"]


async def test_a_signature_of_any_characters_is_refused_not_an_error(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    """The receiver itself compares bytes: a non-ASCII signature must not make a 500."""
    receiver = service.backend.upload_receiver
    assert receiver is not None
    with pytest.raises(UploadRefused):
        receiver.open("0" * 32 + ".json", int(time.time()) + 60, "é" * 64)
    put = await client.put(f"/uploads/{'0' * 32}.json?expires=9999999999&signature={'é' * 64}")
    assert put.status_code == 422
