"""API keys from an SSM Parameter Store SecureString (on the moto server), cached for their TTL,
and an API that fails closed: no keys, an empty parameter or an unreadable one never lets a
caller through, and on Lambda the API refuses to start without keys."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fanout.api.app import create_app
from fanout.api.keys import ParameterKeys
from fanout.models import TenantId
from fanout.service import Fanout
from fanout.settings import Settings
from tests.aws import moto
from tests.contract.support import BackendUnavailable, unavailable
from tests.e2e.harness import REPO

pytestmark = pytest.mark.anyio
A = {"authorization": "Bearer k1"}
B = {"authorization": "Bearer k2"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def ssm() -> Any:
    try:
        return moto.client("ssm")
    except BackendUnavailable as error:
        unavailable("the moto server", error)


def parameter(ssm: Any, value: str) -> str:
    name = f"/fanout-tests/{uuid.uuid4().hex}"
    ssm.put_parameter(Name=name, Value=value, Type="SecureString")
    return name


def client_for(service: Fanout, keys: ParameterKeys) -> httpx.AsyncClient:
    app = create_app(service.settings, service, api_keys=keys)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fanout.test")


@pytest.fixture
async def keyed(service: Fanout, ssm: Any) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    name = parameter(ssm, "k1:tenant-a, k2:tenant-b")
    async with client_for(service, ParameterKeys(name, ttl=0, client=ssm)) as api:
        yield api, name


async def test_keys_from_a_secure_string_name_their_tenants(
    keyed: tuple[httpx.AsyncClient, str],
) -> None:
    api, _ = keyed
    created = await api.post("/jobs", json={"task": "echo", "items": [1]}, headers=A)
    assert created.status_code == 202
    assert (await api.get(f"/jobs/{created.json()['id']}", headers=A)).status_code == 200
    assert (await api.get(f"/jobs/{created.json()['id']}", headers=B)).status_code == 404
    assert (await api.get("/jobs", headers={"authorization": "Bearer k3"})).status_code == 401
    assert (await api.get("/jobs")).status_code == 401


async def test_a_rotated_key_takes_effect_once_the_cache_expires(
    keyed: tuple[httpx.AsyncClient, str], ssm: Any
) -> None:
    """TTL 0: every request reads the parameter, so a rotation is seen at once."""
    api, name = keyed
    ssm.put_parameter(Name=name, Value="k9:tenant-a", Type="SecureString", Overwrite=True)
    assert (await api.get("/jobs", headers=A)).status_code == 401
    assert (await api.get("/jobs", headers={"authorization": "Bearer k9"})).status_code == 200


async def test_keys_are_read_once_per_ttl(service: Fanout, ssm: Any) -> None:
    """Within the TTL the keys read first still hold: no SSM request per API request."""
    name = parameter(ssm, "k1:tenant-a")
    async with client_for(service, ParameterKeys(name, ttl=3600, client=ssm)) as api:
        assert (await api.get("/jobs", headers=A)).status_code == 200
        ssm.put_parameter(Name=name, Value="k9:tenant-a", Type="SecureString", Overwrite=True)
        assert (await api.get("/jobs", headers=A)).status_code == 200
        assert (await api.get("/jobs", headers={"authorization": "Bearer k9"})).status_code == 401


@pytest.mark.parametrize("value", [",", " , ", ":tenant-a", ":"])
async def test_a_parameter_with_no_key_refuses_every_request(
    service: Fanout, ssm: Any, value: str
) -> None:
    """`","` passes a length check and parses to no keys: that must close the API, not open
    it to everyone as the default tenant."""
    name = parameter(ssm, value)
    async with client_for(service, ParameterKeys(name, ttl=0, client=ssm)) as api:
        for headers in ({}, {"authorization": "Bearer "}, A):
            response = await api.post("/jobs", json={"task": "echo", "items": [1]}, headers=headers)
            assert response.status_code == 503
            assert response.headers["content-type"] == "application/problem+json"
    assert service.list(TenantId("default"), None, None, 10).items == []


async def test_a_missing_parameter_refuses_every_request(service: Fanout, ssm: Any) -> None:
    keys = ParameterKeys(f"/fanout-tests/{uuid.uuid4().hex}", ttl=0, client=ssm)
    async with client_for(service, keys) as api:
        assert (await api.get("/jobs", headers=A)).status_code == 503


# -- the Lambda entry refuses to start without keys -------------------------------------------


def import_on_lambda(
    settings: Settings, environment: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Import the API's Lambda entry in a fresh interpreter, as Lambda's runtime does."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FANOUT_")},
        "AWS_LAMBDA_FUNCTION_NAME": "fanout-api",
        "FANOUT_DATA_DIR": str(settings.data_dir),
        **environment,
    }
    return subprocess.run(
        [sys.executable, "-c", "import fanout.api.lambda_handler"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("keys", [None, "", ",", " , ", ":tenant"])
def test_on_lambda_the_api_refuses_to_start_with_no_keys(
    settings: Settings, keys: str | None
) -> None:
    environment = {} if keys is None else {"FANOUT_API_KEYS": keys}
    started = import_on_lambda(settings, environment)
    assert started.returncode != 0
    assert "NoApiKeys" in started.stderr


def test_on_lambda_the_api_refuses_to_start_on_a_parameter_with_no_key(
    settings: Settings, ssm: Any
) -> None:
    name = parameter(ssm, ",")
    started = import_on_lambda(settings, {**moto.environment(), "FANOUT_API_KEYS_PARAMETER": name})
    assert started.returncode != 0
    assert "holds no API key" in started.stderr


def test_on_lambda_the_api_starts_with_keys_in_a_parameter(settings: Settings, ssm: Any) -> None:
    name = parameter(ssm, "k1:tenant-a")
    started = import_on_lambda(settings, {**moto.environment(), "FANOUT_API_KEYS_PARAMETER": name})
    assert started.returncode == 0, started.stderr
