"""`GET /jobs/{id}/events` on the real `fanout serve`: progress, one end, reconnection, limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, connect_sse

from fanout.client import Client
from tests.e2e import backends
from tests.e2e.harness import Launcher, Server
from tests.waiting import wait_until

TOTAL = 20


def gated_job(server: Server, folder: Path, gate_at: int = 0) -> dict[str, Any]:
    """A job whose items from `gate_at` on wait for `folder`/go (see usertasks.gated)."""
    return server.submit(
        {
            "task": "gated",
            "items": list(range(TOTAL)),
            "params": {"dir": str(folder), "gate_at": gate_at},
            "chunk_size": 1,
            "max_concurrency": 2,
        }
    )


def read_events(
    server: Server, job_id: str, last_id: str | None = None, stop_after: int | None = None
) -> tuple[int, list[ServerSentEvent]]:
    headers = {"last-event-id": last_id} if last_id else {}
    events: list[ServerSentEvent] = []
    with (
        httpx.Client(base_url=server.url, timeout=30) as http,
        connect_sse(http, "GET", f"/jobs/{job_id}/events", headers=headers) as source,
    ):
        if source.response.status_code != 200:
            return source.response.status_code, events
        for event in source.iter_sse():
            events.append(event)
            if stop_after is not None and len(events) >= stop_after:
                break
    return 200, events


def test_progress_events_then_one_end_event_then_the_stream_closes(
    fanout: Launcher, tmp_path: Path
) -> None:
    server = fanout.serve()
    job = gated_job(server, tmp_path, gate_at=TOTAL // 2)
    status, first = read_events(server, job["id"], stop_after=1)
    assert status == 200 and first[0].event == "progress"
    (tmp_path / "go").touch()

    status, events = read_events(server, job["id"])
    kinds = [event.event for event in events]
    assert kinds[-1] == "end" and set(kinds[:-1]) <= {"progress"}
    jobs = [json.loads(event.data) for event in events]
    assert jobs[-1]["status"] == "succeeded"
    assert jobs[-1] == server.job(job["id"])
    done = [j["counts"]["succeeded"] for j in jobs]
    assert done == sorted(done), "counts only grow"
    ids = [event.id for event in events]
    assert len(set(ids)) == len(ids), "each event is a new state"


def test_last_event_id_resumes_after_that_event_and_an_ended_stream_answers_204(
    fanout: Launcher, tmp_path: Path
) -> None:
    server = fanout.serve()
    job = gated_job(server, tmp_path)
    _, first = read_events(server, job["id"], stop_after=1)
    (tmp_path / "go").touch()
    _, rest = read_events(server, job["id"], last_id=first[0].id)
    assert rest and first[0].id not in [event.id for event in rest]
    assert rest[-1].event == "end"
    status, again = read_events(server, job["id"], last_id=rest[-1].id)
    assert (status, again) == (204, [])
    _, fresh = read_events(server, job["id"])  # no Last-Event-ID: the ended job at once
    assert [event.event for event in fresh] == ["end"]


def test_a_stream_past_its_lifetime_closes_and_the_client_carries_on_where_it_left(
    fanout: Launcher, tmp_path: Path
) -> None:
    server = fanout.serve(env={"FANOUT_STREAM_MAX_SECONDS": "0.5"})
    job = gated_job(server, tmp_path)
    status, events = read_events(server, job["id"])  # closes after half a second, no end
    kinds = [event.event for event in events]
    # queued -> running may fall inside the half second: one progress event or two, never an end.
    assert status == 200 and kinds and set(kinds) == {"progress"}
    seen: list[str] = []
    with Client(server.url) as client:
        for update in client.watch(job["id"], timeout=60):
            seen.append(update.status)
            if len(seen) == 1:
                (tmp_path / "go").touch()
    assert seen[-1] == "succeeded"


def test_streams_keep_to_their_tenant_and_to_a_bound_per_client_address(
    fanout: Launcher, tmp_path: Path
) -> None:
    env = {"FANOUT_API_KEYS": "key-a:tenant-a,key-b:tenant-b", "FANOUT_MAX_STREAMS_PER_PEER": "2"}
    server = fanout.serve(env=env)
    a, b = ({"authorization": f"Bearer key-{t}"} for t in "ab")
    created = httpx.post(
        f"{server.url}/jobs",
        headers=a,
        json={"task": "gated", "items": [1], "params": {"dir": str(tmp_path)}},
    )
    job_id = created.json()["id"]
    events = f"{server.url}/jobs/{job_id}/events"
    assert httpx.get(events).status_code == 401
    other = httpx.get(events, headers=b)
    assert (other.status_code, other.headers["content-type"]) == (404, "application/problem+json")

    with httpx.Client(headers=a, timeout=30) as http:
        with http.stream("GET", events) as one, http.stream("GET", events) as two:
            assert one.status_code == two.status_code == 200
            third = http.get(events)
            assert third.status_code == 429
            assert third.headers["retry-after"] == "5"
            assert "2 event streams" in third.json()["detail"]
        # Closed streams give back their places (the server notices the disconnect).
        wait_until(lambda: _opens(http, events), 10, "a place to free up", every=0.05)
    (tmp_path / "go").touch()


def _opens(http: httpx.Client, url: str) -> bool:
    with http.stream("GET", url) as response:
        return response.status_code == 200


def test_events_run_on_the_aws_backend_too(fanout: Launcher, tmp_path: Path) -> None:
    server = backends.serve(fanout, "aws", workers=1)
    job = gated_job(server, tmp_path, gate_at=TOTAL // 2)
    _, first = read_events(server, job["id"], stop_after=1)
    (tmp_path / "go").touch()
    _, rest = read_events(server, job["id"], last_id=first[0].id)
    assert rest[-1].event == "end"
    assert json.loads(rest[-1].data)["counts"]["succeeded"] == TOTAL
