"""A job's webhook at submit: the URL is checked against forbidden networks and the secret is
validated, or generated and shown once."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
from standardwebhooks import Webhook

from fanout.settings import Settings
from tests.api.conftest import PROBLEM, connect, other_settings, submit

pytestmark = pytest.mark.anyio

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()


@pytest.fixture
async def strict(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A server that allows no private network, as in production."""
    changed, service = other_settings(settings, webhook_allow_networks=[])
    async with connect(changed, service) as api:
        yield api


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/hook",
        "http://localhost:9000/hook",
        "http://2130706433/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.1/hook",
        "http://172.16.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.100.100.200/",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:169.254.169.254]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://[fe80::1]/hook",
        "https://224.0.0.1/hook",
    ],
)
async def test_a_webhook_url_to_a_forbidden_address_is_a_422_naming_it(
    strict: httpx.AsyncClient, url: str
) -> None:
    response = await strict.post(
        "/jobs", json={"task": "echo", "items": [1], "webhook": {"url": url}}
    )

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert [e["field"] for e in response.json()["errors"]] == ["webhook.url"]
    assert (await strict.get("/jobs")).json()["items"] == []


async def test_a_webhook_url_in_an_allowed_network_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    job = await submit(
        client, {"task": "echo", "items": [1], "webhook": {"url": "http://127.0.0.1:9/hook"}}
    )

    assert job["webhook"]["url"] == "http://127.0.0.1:9/hook"
    assert job["webhook"]["attempts"] == []


async def test_a_generated_secret_is_returned_once_in_the_post_response_only(
    client: httpx.AsyncClient,
) -> None:
    created = await submit(
        client, {"task": "echo", "items": [1], "webhook": {"url": "http://127.0.0.1:9/hook"}}
    )

    secret = created["webhook"]["secret"]
    assert secret.startswith("whsec_")
    Webhook(secret)  # a usable Standard Webhooks secret
    assert 24 <= len(base64.b64decode(secret.removeprefix("whsec_"))) <= 64
    fetched = (await client.get(f"/jobs/{created['id']}")).json()
    assert "secret" not in fetched["webhook"]
    listed = (await client.get("/jobs")).json()["items"][0]
    assert "secret" not in listed["webhook"]
    assert secret not in (await client.get(f"/jobs/{created['id']}")).text
    del created["webhook"]["secret"]
    assert fetched == created


async def test_each_job_gets_its_own_generated_secret(client: httpx.AsyncClient) -> None:
    body = {"task": "echo", "items": [1], "webhook": {"url": "http://127.0.0.1:9/hook"}}

    first = await submit(client, body)
    second = await submit(client, body)

    assert first["webhook"]["secret"] != second["webhook"]["secret"]


async def test_a_given_secret_is_accepted_and_never_echoed(client: httpx.AsyncClient) -> None:
    created = await submit(
        client,
        {
            "task": "echo",
            "items": [1],
            "webhook": {"url": "http://127.0.0.1:9/hook", "secret": SECRET},
        },
    )

    assert created["webhook"].get("secret") is None
    assert SECRET not in (await client.get(f"/jobs/{created['id']}")).text


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"short").decode(),
        "whsec_" + base64.b64encode(b"x" * 65).decode(),
        "",
    ],
)
async def test_an_invalid_secret_is_a_422_naming_it(client: httpx.AsyncClient, secret: str) -> None:
    response = await client.post(
        "/jobs",
        json={
            "task": "echo",
            "items": [1],
            "webhook": {"url": "http://127.0.0.1:9/hook", "secret": secret},
        },
    )

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["webhook.secret"]
