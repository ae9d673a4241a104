"""Redrive against the real `fanout serve` on both backends: only the failed items run again,
one new signed webhook with a new id, and the same exactness when the server is killed
mid-redrive and started again."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import backends
from tests.e2e.harness import Launcher, Receiver, Server, verified
from tests.waiting import wait_until

ITEMS = list(range(12))
FAILING = [1, 4, 5, 11]


def failing_job(server: Server, folder: Path, receiver: Receiver, pause: float) -> dict[str, Any]:
    (folder / "runs").touch()
    job = server.submit(
        {
            "task": "fail_until_fixed",
            "items": ITEMS,
            "params": {"dir": str(folder), "fail": FAILING, "pause": pause},
            "chunk_size": 3,
            "max_concurrency": 2,
            "webhook": {"url": receiver.url},
        }
    )
    ended = server.wait_for_job(job["id"], 60)
    assert (ended["status"], ended["counts"]["failed"]) == ("failed", len(FAILING))
    return job


def runs(folder: Path) -> Counter[int]:
    return Counter(int(line) for line in (folder / "runs").read_text().split())


def redrive(server: Server, job_id: str) -> dict[str, Any]:
    response = server.client.post(f"/jobs/{job_id}/redrive")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    assert job["redrive_count"] == 1 and job["status"] in ("queued", "running")
    assert job["counts"]["failed"] == 0 and job["webhook"]["event_id"] is None
    return job


def check_the_end(server: Server, receiver: Receiver, job: dict[str, Any], folder: Path) -> None:
    """The job succeeded with exact counts and ordered results, and its two webhooks (the
    first run's, the redrive's) have different ids."""
    done = server.wait_for_job(job["id"], 60)
    assert done["status"] == "succeeded"
    assert done["counts"] | {"succeeded": len(ITEMS), "failed": 0} == done["counts"]
    assert [(r["index"], r["output"]) for r in server.results(job["id"])] == [
        (i, i * 10) for i in ITEMS
    ]
    first, second = receiver.wait_for(2, 60)
    secret = job["webhook"]["secret"]
    assert verified(first, secret)["type"] == "job.failed"
    assert verified(second, secret)["type"] == "job.succeeded"
    assert first.headers["webhook-id"] != second.headers["webhook-id"]
    assert second.headers["webhook-id"] == done["webhook"]["event_id"]
    ran = runs(folder)
    assert all(ran[i] == 1 for i in ITEMS if i not in FAILING), "a succeeded item ran again"
    assert all(ran[i] >= 2 for i in FAILING)


@pytest.mark.parametrize("backend", backends.BACKENDS)
def test_a_redrive_runs_only_the_failed_items_and_sends_one_new_webhook(
    fanout: Launcher, receiver: Receiver, tmp_path: Path, backend: str
) -> None:
    server = backends.serve(fanout, backend)
    job = failing_job(server, tmp_path, receiver, pause=0)
    receiver.wait_for(1, 60)
    (tmp_path / "fixed").touch()
    redrive(server, job["id"])
    check_the_end(server, receiver, job, tmp_path)
    assert all(runs(tmp_path)[i] == 2 for i in FAILING)
    again = server.client.post(f"/jobs/{job['id']}/redrive")
    assert (again.status_code, again.json()["title"]) == (409, "Nothing to redrive")


@pytest.mark.parametrize("backend", backends.BACKENDS)
def test_a_server_killed_mid_redrive_finishes_it_exactly_after_a_restart(
    fanout: Launcher, receiver: Receiver, tmp_path: Path, backend: str
) -> None:
    environment = backends.environment(fanout, backend)
    if backend == "aws":
        # SQS gives a killed worker's chunk back after its visibility timeout (the local
        # queue's leases die with their owner at once): keep it well inside the wait below.
        environment["FANOUT_VISIBILITY_TIMEOUT"] = "10"
    server = fanout.serve(workers=1, env=environment)
    job = failing_job(server, tmp_path, receiver, pause=0.3)
    receiver.wait_for(1, 60)
    (tmp_path / "fixed").touch()
    redrive(server, job["id"])
    wait_until(lambda: sum(runs(tmp_path)[i] for i in FAILING) > len(FAILING), 60, "a re-run")
    server.process.kill()  # SIGKILL, the whole tree, mid-redrive

    restarted = fanout.serve(workers=1, env=environment)
    check_the_end(restarted, receiver, job, tmp_path)


@pytest.mark.parametrize(
    ("backend", "point"),
    [("sqlite", "redrive.stored"), ("aws", "redrive.stored"), ("aws", "redrive.committed")],
)
def test_a_server_killed_inside_the_redrive_request_finishes_it_after_a_restart(
    fanout: Launcher, receiver: Receiver, tmp_path: Path, backend: str, point: str
) -> None:
    environment = {**backends.environment(fanout, backend), "FANOUT_RECONCILE_INTERVAL": "1"}
    crashing = {**environment, "FANOUT_CRASH_AT": f"{point}:{tmp_path / 'crashed'}"}
    server = fanout.serve(workers=1, env=crashing)
    job = failing_job(server, tmp_path, receiver, pause=0)
    receiver.wait_for(1, 60)
    (tmp_path / "fixed").touch()
    with pytest.raises(httpx.TransportError):
        server.client.post(f"/jobs/{job['id']}/redrive")
    assert (tmp_path / "crashed").exists()
    server.process.kill()

    restarted = fanout.serve(workers=1, env=environment)
    check_the_end(restarted, receiver, job, tmp_path)
    assert restarted.job(job["id"])["redrive_count"] == 1
