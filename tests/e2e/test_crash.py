"""Workers that die: killed from outside, killed by their own item, or hung by it. Every job
still ends, with one outcome per item and one webhook."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any

import psutil

from tests.e2e.harness import TERMINAL, Launcher, Receiver, all_succeeded, the_one_webhook
from tests.waiting import wait_until

KILLS = 8
# Bounds on a loaded machine: a worker killed young counts as a quick exit, and its slot is
# respawned after a backoff of up to 5 s (workers/local.py).
REPLACED = 30.0
MOVED_ON = 30.0


def finished(state: dict[str, Any]) -> int:
    counts: dict[str, int] = state["counts"]
    return counts["succeeded"] + counts["failed"]


def test_a_job_finishes_exactly_while_its_workers_are_killed_again_and_again(
    fanout: Launcher, receiver: Receiver
) -> None:
    server = fanout.serve(workers=2)
    total = 1000
    job = server.submit(
        {
            "task": "pause_then_triple",
            "items": list(range(total)),
            "params": {"pause": 0.01},
            "chunk_size": 5,
            "webhook": {"url": receiver.url},
        }
    )
    wait_until(lambda: server.job(job["id"])["status"] == "running", 30, "the job to start")

    killed: set[int] = set()
    done: list[int] = []
    while len(killed) < KILLS:
        victim = random.choice(
            wait_until(
                lambda: [w for w in server.process.workers() if w.pid not in killed],
                REPLACED,
                "the supervisor to replace a killed worker",
            )
        )
        with contextlib.suppress(psutil.NoSuchProcess):  # gone since it was listed
            victim.kill()
        killed.add(victim.pid)
        state = server.job(job["id"])
        assert state["status"] not in TERMINAL, (
            f"the job ended after {len(killed)} kills; give it more items"
        )
        done.append(finished(state))
        # The next kill once a chunk more is recorded: the workers were replaced, or the
        # killed one's chunk handed back, and the job moves on. An event, not a pace.
        wait_until(
            lambda: finished(server.job(job["id"])) > done[-1],
            MOVED_ON,
            f"the job to move on after kill {len(killed)}",
        )

    # Less than the visibility timeout: the messages a killed worker held come back at once.
    final = server.wait_for_job(job["id"], timeout=45)
    assert done == sorted(done), "the job's counters went backwards"
    assert final["status"] == "succeeded"
    assert final["counts"] == all_succeeded(total)
    results = server.results(job["id"])
    assert [r["index"] for r in results] == list(range(total))
    assert results == [{"index": i, "status": "succeeded", "output": 3 * i} for i in range(total)]
    payload = the_one_webhook(server, receiver, job["id"], job["webhook"]["secret"])
    assert payload["data"]["counts"] == final["counts"]


def test_a_chunk_run_by_a_frozen_worker_and_again_by_another_is_counted_once(
    fanout: Launcher, receiver: Receiver, tmp_path: Path
) -> None:
    """At-least-once delivery: a worker frozen past its visibility timeout (so its heartbeat
    stops too) loses its chunk to the other worker, then wakes and records the chunk again."""
    server = fanout.serve(workers=2, env={"FANOUT_VISIBILITY_TIMEOUT": "1"})
    total, stall = 400, 9
    params = {"stall": stall, "dir": str(tmp_path), "stall_for": 3.0, "pause": 0.01}
    job = server.submit(
        {
            "task": "stall_once",
            "items": list(range(total)),
            "params": params,
            "chunk_size": stall + 1,
            "webhook": {"url": receiver.url},
        }
    )
    pid_file = tmp_path / "pid"

    def stalled_pid() -> int | None:
        return int(pid_file.read_text()) if pid_file.exists() else None

    frozen = psutil.Process(wait_until(stalled_pid, 30, "an item to stall its worker"))
    frozen.suspend()
    try:
        wait_until(
            lambda: server.page(job["id"], cursor=stall, limit=1)[0]["status"] == "succeeded",
            30,
            "the other worker to run the frozen worker's chunk",
        )
    finally:
        frozen.resume()
    wait_until((tmp_path / "woke").exists, 30, "the frozen worker to finish its chunk")
    assert server.job(job["id"])["status"] == "running", "the job ended first; give it more items"

    final = server.wait_for_job(job["id"], timeout=60)
    assert final["counts"] == all_succeeded(total)
    results = server.results(job["id"])
    assert results == [{"index": i, "status": "succeeded", "output": 3 * i} for i in range(total)]
    the_one_webhook(server, receiver, job["id"], job["webhook"]["secret"])


def test_an_item_that_kills_its_worker_is_isolated_and_fails_alone(
    fanout: Launcher, receiver: Receiver
) -> None:
    server = fanout.serve(workers=2, env={"FANOUT_MAX_RECEIVE_COUNT": "2"})
    total, poison = 200, 137
    job = server.submit(
        {
            "task": "poison",
            "items": list(range(total)),
            "params": {"poison": poison},
            "chunk_size": 50,
            "tolerated_failure_count": 1,
            "webhook": {"url": receiver.url},
        }
    )

    final = server.wait_for_job(job["id"], timeout=90)
    assert final["status"] == "succeeded", final["error"]
    assert final["counts"] == {
        "total": total,
        "succeeded": total - 1,
        "failed": 1,
        "pending": 0,
        "running": 0,
        "cancelled": 0,
    }
    results = server.results(job["id"])
    assert [r["index"] for r in results] == list(range(total))
    lost = results.pop(poison)
    assert lost["status"] == "failed"
    assert lost["error"]["type"] == "WorkerLost"
    assert lost["error"]["attempts"] == 2
    assert results == [
        {"index": i, "status": "succeeded", "output": i + 1} for i in range(total) if i != poison
    ]
    payload = the_one_webhook(server, receiver, job["id"], job["webhook"]["secret"])
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["counts"]["failed"] == 1


def test_an_item_that_hangs_past_its_task_timeout_fails_alone(fanout: Launcher) -> None:
    server = fanout.serve(workers=2)
    items = [0.0, 0.01, 60.0, 0.02]
    jobs = [
        server.submit({"task": task, "items": items, "tolerated_failure_count": 1})
        for task in ("hang", "hang_async")
    ]

    for job in jobs:
        final = server.wait_for_job(job["id"], timeout=30)
        assert final["status"] == "succeeded", (job["task"], final["error"])
        assert (final["counts"]["succeeded"], final["counts"]["failed"]) == (3, 1)
        results: list[dict[str, Any]] = server.results(job["id"])
        hung = results.pop(2)
        assert hung["status"] == "failed"
        assert hung["error"]["type"] == "TaskTimeout", (job["task"], hung)
        assert hung["error"]["attempts"] == 2
        assert [r["output"] for r in results] == [0.0, 0.01, 0.02]
