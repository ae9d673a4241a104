"""`api/hot.py` serves the three routes clients call most past FastAPI's routing: it must answer
every request exactly as FastAPI's own routes do, and leave to them every request it cannot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from fanout.api.app import create_app
from fanout.api.hot import HotRoutes, endpoint_for
from fanout.service import Fanout
from fanout.settings import Settings
from tests.api.conftest import PROBLEM, other_settings

pytestmark = pytest.mark.anyio

KEYED = {"authorization": "Bearer k1"}


def without_hot_routes(app: FastAPI) -> FastAPI:
    """The same app with every request answered by FastAPI's routes (its middleware stack is
    built at the first request, so this takes effect)."""
    app.user_middleware = [
        entry for entry in app.user_middleware if cast(object, entry.cls) is not HotRoutes
    ]
    return app


def client_of(app: FastAPI, headers: dict[str, str]) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://localhost", headers=headers)


@pytest.fixture(params=["keyless", "keyed"])
async def pair(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, Fanout]]:
    """A client of the app as served, and one of the same app without `HotRoutes`, over one
    store."""
    keyed = request.param == "keyed"
    changed, service = other_settings(settings, api_keys=["k1:tenant-a"] if keyed else [])
    headers = KEYED if keyed else {}
    async with (
        client_of(create_app(changed, service), headers) as hot,
        client_of(without_hot_routes(create_app(changed, service)), headers) as plain,
    ):
        yield hot, plain, service


def same(hot: httpx.Response, plain: httpx.Response) -> None:
    assert hot.status_code == plain.status_code
    assert hot.headers.get("content-type") == plain.headers.get("content-type")
    assert hot.headers.get("www-authenticate") == plain.headers.get("www-authenticate")
    assert hot.content == plain.content


LISTINGS = [
    "",
    "?limit=20",
    "?limit=1",
    "?limit=100",
    "?limit=101",
    "?limit=0",
    "?limit=020",
    "?limit=+5",
    "?limit=%205",
    "?limit=5.0",
    "?limit=",
    "?limit=abc",
    "?limit=5&limit=6",
    "?status=running",
    "?status=succeeded&limit=2",
    "?status=RUNNING",
    "?status=bogus",
    "?status=",
    "?cursor=1",
    "?cursor=01",
    "?cursor=",
    "?cursor=1e3",
    "?cursor=%D9%A1",
    "?cursor=" + "9" * 100,
    "?cursor=" + "9" * 101,
    "?cursor=1%0A",
    "?unknown=1",
    "?status=running&status=queued",
]


@pytest.mark.parametrize("query", LISTINGS)
async def test_a_listing_is_answered_as_fastapis_route_answers_it(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient, Fanout], query: str
) -> None:
    hot, plain, _ = pair
    for items in ([1], [2, 3]):
        assert (await hot.post("/jobs", json={"task": "echo", "items": items})).status_code == 202

    same(await hot.get("/jobs" + query), await plain.get("/jobs" + query))


@pytest.mark.parametrize("anonymous", [False, True])
async def test_a_job_is_read_as_fastapis_route_reads_it(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient, Fanout], anonymous: bool
) -> None:
    hot, plain, _ = pair
    created = await hot.post("/jobs", json={"task": "echo", "items": [1]})
    job = "/jobs/" + created.json()["id"]
    headers = {"authorization": ""} if anonymous else {}

    for path in (job, "/jobs/no-such-job", "/jobs/", "/jobs/a%2Fb"):
        same(await hot.get(path, headers=headers), await plain.get(path, headers=headers))
    same(await hot.head(job), await plain.head(job))


def shape(response: httpx.Response) -> tuple[int, Any]:
    """A response to POST /jobs with what differs between two jobs (id, times) left out."""
    body = response.json()
    if response.status_code == 202:
        body = {key: value for key, value in body.items() if key not in ("id", "created_at")}
        assert response.headers["location"] == "/jobs/" + response.json()["id"]
    return response.status_code, body


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b'{"task": "echo", "items": [1, 2]}', {}),
        (b'{"task": "echo", "items": [1, 2]}', {"idempotency-key": "k" * 255}),
        (b'{"task": "echo", "items": [1, 2]}', {"idempotency-key": "k" * 256}),
        (b'{"task": "no-such-task", "items": [1]}', {}),
        (b'{"task": "echo", "items": [1], "bogus": 1}', {}),
        (b"not json", {}),
        (b"1\n2\n", {"content-type": "application/x-ndjson"}),
    ],
)
async def test_a_submission_is_answered_as_fastapis_route_answers_it(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient, Fanout],
    content: bytes,
    headers: dict[str, str],
) -> None:
    hot, plain, _ = pair
    headers = {"content-type": "application/json", **headers}
    if "idempotency-key" in headers:  # each side with its own key: the second would replay
        other = {**headers, "idempotency-key": headers["idempotency-key"].upper()}
    else:
        other = headers
    query = "?task=echo" if "ndjson" in headers["content-type"] else ""

    answers = [
        await hot.post("/jobs" + query, content=content, headers=headers),
        await plain.post("/jobs" + query, content=content, headers=other),
    ]

    assert shape(answers[0]) == shape(answers[1])
    for answer in answers:
        if answer.status_code == 202:
            assert (await hot.get(answer.headers["location"])).status_code == 200
        else:
            assert answer.headers["content-type"] == PROBLEM


async def test_two_idempotency_keys_are_answered_as_fastapis_route_answers_them(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient, Fanout],
) -> None:
    hot, plain, _ = pair
    content = b'{"task": "echo", "items": [1]}'
    headers = [("content-type", "application/json"), ("idempotency-key", "a")]

    answers = [
        await side.post("/jobs", content=content, headers=[*headers, ("idempotency-key", key)])
        for side, key in ((hot, "b"), (plain, "c"))
    ]

    assert [answer.status_code for answer in answers] == [202, 202]
    assert answers[0].headers["idempotency-key"] == answers[1].headers["idempotency-key"]


class Failing(Fanout):
    """A service with a bug in its reads."""

    def get(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    def list(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")


@pytest.mark.parametrize("path", ["/jobs/x", "/jobs"])
async def test_an_unexpected_error_is_a_500_problem_as_from_any_route(
    settings: Settings, service: Fanout, path: str
) -> None:
    app = create_app(settings, Failing(service.backend, settings))
    async with client_of(app, {}) as client:
        response = await client.get(path)

    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert "a bug" not in response.text


def scope(method: str, path: str, query: bytes = b"") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "query_string": query, "headers": []}


@pytest.mark.parametrize(
    ("method", "path", "query", "hot"),
    [
        ("GET", "/jobs/abc", b"", True),
        ("GET", "/jobs", b"", True),
        ("GET", "/jobs", b"limit=20", True),
        ("GET", "/jobs", b"status=running&cursor=12&limit=100&other=x", True),
        ("POST", "/jobs", b"", True),
        ("POST", "/jobs", b"task=echo", True),
        ("HEAD", "/jobs/abc", b"", False),
        ("GET", "/jobs/abc/results", b"", False),
        ("GET", "/jobs/", b"", False),
        ("GET", "/jobs", b"limit=020", False),
        ("GET", "/jobs", b"limit=101", False),
        ("GET", "/jobs", b"limit=5&limit=5", False),
        ("GET", "/jobs", b"status=bogus", False),
        ("GET", "/jobs", b"cursor=x", False),
        ("PATCH", "/jobs/abc", b"", False),
        ("POST", "/jobs/abc/cancel", b"", False),
        ("GET", "/healthz", b"", False),
    ],
)
def test_the_common_requests_take_the_hot_route_and_every_other_is_left_to_fastapi(
    method: str, path: str, query: bytes, hot: bool
) -> None:
    assert (endpoint_for(scope(method, path, query)) is not None) is hot


def test_a_root_path_is_matched_below() -> None:
    below = {**scope("GET", "/api/jobs/abc"), "root_path": "/api"}
    beside = {**scope("GET", "/apix/jobs/abc"), "root_path": "/api"}

    assert endpoint_for(below) is not None
    assert endpoint_for(beside) is None
