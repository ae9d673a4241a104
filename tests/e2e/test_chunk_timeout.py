"""The README's promise on `FANOUT_CHUNK_TIMEOUT`: a chunk running longer has hung its worker,
which is replaced. The hung process ends, the supervisor starts another, and the chunk comes back:
it runs again, or (hanging every time) is split until the item responsible fails alone as
`WorkerLost`. The service keeps going meanwhile.

The timeout is checked at the heartbeat's beats (every third of the visibility timeout), so both
are set short here; the hung items sleep ten minutes, far past either test's deadlines."""

from __future__ import annotations

import re
from pathlib import Path

import psutil

from tests.e2e.harness import Launcher, Receiver, Server, all_succeeded, the_one_webhook
from tests.waiting import wait_until

SHORT_TIMEOUTS = {"FANOUT_CHUNK_TIMEOUT": "1", "FANOUT_VISIBILITY_TIMEOUT": "0.6"}
HUNG_EXIT_CODE = 75  # the worker's exit status when it ends itself (EX_TEMPFAIL)
FOREVER = 600.0


def replaced(server: Server, pid: int) -> str:
    """Wait for the worker `pid` to end and another to take its place; the line the supervisor
    logged about it."""

    def gone() -> bool:
        try:
            return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return True

    wait_until(gone, 30, f"the hung worker {pid} to end")
    line = wait_until(
        lambda: re.search(rf"worker {pid} exited with (-?\d+); starting another", out(server)),
        10,
        f"the supervisor to replace worker {pid}",
    )

    def two_workers() -> list[psutil.Process] | None:
        workers = server.process.workers()
        return workers if len(workers) == 2 else None

    assert pid not in [w.pid for w in wait_until(two_workers, 10, "two workers again")]
    return line.group(0)


def hung_pid(folder: Path) -> int | None:
    """The pid `hang_on` left, once it has (written aside, then renamed into place)."""
    pid = folder / "pid"
    return int(pid.read_text()) if pid.exists() else None


def out(server: Server) -> str:
    return server.process.output()


def test_a_chunk_past_the_chunk_timeout_ends_its_worker_and_runs_again_elsewhere(
    fanout: Launcher, receiver: Receiver, tmp_path: Path
) -> None:
    server = fanout.serve(workers=2, env=SHORT_TIMEOUTS)
    total = 40
    job = server.submit(
        {
            "task": "hang_on",
            "items": list(range(total)),
            "params": {"hang": 13, "for": FOREVER, "dir": str(tmp_path)},
            "chunk_size": 5,
            "webhook": {"url": receiver.url},
        }
    )
    pid = wait_until(lambda: hung_pid(tmp_path), 30, "an item to hang its worker")

    assert replaced(server, pid) == f"worker {pid} exited with {HUNG_EXIT_CODE}; starting another"
    assert "ran past 1.0s; ending this worker" in out(server)
    final = server.wait_for_job(job["id"], timeout=30)
    assert final["status"] == "succeeded"
    assert final["counts"] == all_succeeded(total)
    results = server.results(job["id"])
    assert results == [{"index": i, "status": "succeeded", "output": 3 * i} for i in range(total)]
    the_one_webhook(server, receiver, job["id"], job["webhook"]["secret"])


def test_an_item_that_hangs_its_worker_every_time_fails_alone_and_the_service_goes_on(
    fanout: Launcher,
) -> None:
    server = fanout.serve(workers=2, env={**SHORT_TIMEOUTS, "FANOUT_MAX_RECEIVE_COUNT": "2"})
    total, hang = 12, 5
    job = server.submit(
        {
            "task": "hang_on",
            "items": list(range(total)),
            "params": {"hang": hang, "for": FOREVER},
            "chunk_size": 2,
            "tolerated_failure_count": 1,
        }
    )
    # Meanwhile another job runs to its end on the workers the hangs leave.
    other = server.submit({"task": "pause_then_triple", "items": [1, 2], "params": {"pause": 0}})

    assert server.wait_for_job(other["id"], timeout=30)["status"] == "succeeded"
    final = server.wait_for_job(job["id"], timeout=60)
    assert final["status"] == "succeeded", final["error"]
    assert (final["counts"]["succeeded"], final["counts"]["failed"]) == (total - 1, 1)
    results = server.results(job["id"])
    lost = results.pop(hang)
    assert lost["status"] == "failed"
    assert (lost["error"]["type"], lost["error"]["attempts"]) == ("WorkerLost", 2)
    assert results == [
        {"index": i, "status": "succeeded", "output": 3 * i} for i in range(total) if i != hang
    ]
    # Two deliveries of the pair, two of the item alone, each hanging (and replacing) a worker.
    ran_past = re.findall(rf"job_id='{job['id']}', start=(\d+), end=(\d+)\) ran past", out(server))
    assert sorted(ran_past) == [("4", "6"), ("4", "6"), ("5", "6"), ("5", "6")]
    hung = re.findall(rf"worker (\d+) exited with {HUNG_EXIT_CODE}; starting another", out(server))
    assert len(set(hung)) >= 4
    assert len(server.process.workers()) == 2
