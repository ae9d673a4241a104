"""Stopping and starting the server, and workers run apart from it: nothing accepted is lost,
nothing is counted twice."""

from __future__ import annotations

import signal
import time
from datetime import datetime

import pytest

from tests.e2e.harness import Launcher, Receiver, all_succeeded, the_one_webhook
from tests.waiting import wait_until


@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name
)
def test_a_job_stopped_mid_way_finishes_after_a_restart_with_nothing_lost_or_doubled(
    fanout: Launcher, receiver: Receiver, signum: signal.Signals
) -> None:
    """Ctrl-C, a process manager's SIGTERM, or a crash (whose orphaned workers must notice and
    exit by themselves: `stop` fails the test if any process is left)."""
    server = fanout.serve(workers=2)
    total = 2000
    job = server.submit(
        {
            "task": "pause_then_triple",
            "items": list(range(total)),
            "params": {"pause": 0.002},
            "chunk_size": 20,
            "webhook": {"url": receiver.url},
        }
    )
    mid_way = wait_until(
        lambda: (state := server.job(job["id"]))["counts"]["succeeded"] >= 100 and state,
        30,
        "the first hundred items",
    )
    assert mid_way["counts"]["succeeded"] < total

    if signum is signal.SIGKILL:
        assert server.stop(signum) == -signal.SIGKILL
    else:
        assert server.stop(signum) == 0
        assert "fanout stopped" in server.process.output()
    assert receiver.deliveries() == []

    restarted_at = time.time()
    server = fanout.serve(workers=2, data_dir=server.data_dir)
    final = server.wait_for_job(job["id"], timeout=90)
    assert datetime.fromisoformat(final["finished_at"]).timestamp() >= restarted_at
    assert final["status"] == "succeeded"
    assert final["counts"] == all_succeeded(total)
    results = server.results(job["id"])
    assert results == [{"index": i, "status": "succeeded", "output": 3 * i} for i in range(total)]
    payload = the_one_webhook(server, receiver, job["id"], job["webhook"]["secret"])
    assert payload["data"]["counts"] == final["counts"]


def test_fanout_worker_runs_the_jobs_of_a_server_started_without_workers(
    fanout: Launcher, receiver: Receiver
) -> None:
    server = fanout.serve(workers=0)
    assert server.process.workers() == []
    total = 500
    job = server.submit(
        {
            "task": "pause_then_triple",
            "items": list(range(total)),
            "params": {"pause": 0.001},
            "chunk_size": 25,
            "webhook": {"url": receiver.url},
        }
    )
    assert server.job(job["id"])["status"] == "queued"

    workers = [fanout.worker(server.data_dir, workers=1) for _ in range(2)]
    final = server.wait_for_job(job["id"], timeout=60)
    assert final["status"] == "succeeded"
    assert (final["counts"]["succeeded"], final["counts"]["failed"]) == (total, 0)
    results = server.results(job["id"])
    assert results == [{"index": i, "status": "succeeded", "output": 3 * i} for i in range(total)]
    the_one_webhook(server, receiver, job["id"], job["webhook"]["secret"])
    for worker in workers:
        assert worker.stop(signal.SIGTERM) == 0
