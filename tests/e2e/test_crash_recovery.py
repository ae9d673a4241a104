"""Workers killed with the chunks they held: the chunks come back at once, not after their
visibility timeout (set to ten minutes here, so waiting it out would fail every test).

Each worker process has an owner token and a heartbeat; a restarted server, the lease sweep
and a supervisor that sees a worker die hand back what dead owners held.
"""

from __future__ import annotations

import signal
from typing import Any

from tests.e2e.harness import Launcher, Receiver, Server, all_succeeded, the_one_webhook
from tests.waiting import wait_until

LONG_VISIBILITY = {"FANOUT_VISIBILITY_TIMEOUT": "600"}
# Far less than the visibility timeout: the held chunks were handed back.
WELL_BEFORE_VISIBILITY = 120.0


def started_job(server: Server, receiver: Receiver, total: int) -> dict[str, Any]:
    job = server.submit(
        {
            "task": "pause_then_triple",
            "items": list(range(total)),
            "params": {"pause": 0.002},
            "chunk_size": 40,
            "webhook": {"url": receiver.url},
        }
    )
    wait_until(
        lambda: 200 <= server.job(job["id"])["counts"]["succeeded"] < total,
        60,
        "the job to be mid-way",
        every=0.02,
    )
    return job


def finished_exactly(server: Server, receiver: Receiver, job: dict[str, Any], total: int) -> None:
    final = server.wait_for_job(job["id"], timeout=WELL_BEFORE_VISIBILITY)
    assert final["status"] == "succeeded", final["error"]
    assert final["counts"] == all_succeeded(total)
    results = server.results(job["id"])
    assert results == [{"index": i, "status": "succeeded", "output": 3 * i} for i in range(total)]
    the_one_webhook(server, receiver, job["id"], job["webhook"]["secret"])


def test_after_a_sigkill_of_the_whole_tree_the_restart_hands_back_what_dead_workers_held(
    fanout: Launcher, receiver: Receiver
) -> None:
    total = 4000
    server = fanout.serve(workers=2, env=LONG_VISIBILITY)
    job = started_job(server, receiver, total)

    server.process.kill()  # the server and every worker process, at once
    server = fanout.serve(workers=2, data_dir=server.data_dir, env=LONG_VISIBILITY)

    finished_exactly(server, receiver, job, total)


def test_a_killed_fanout_worker_hands_back_its_chunks_to_the_server_beside_it(
    fanout: Launcher, receiver: Receiver
) -> None:
    total = 3000
    server = fanout.serve(workers=0, env=LONG_VISIBILITY)
    worker = fanout.worker(server.data_dir, workers=2, env=LONG_VISIBILITY)
    job = started_job(server, receiver, total)

    worker.kill()
    other = fanout.worker(server.data_dir, workers=1, env=LONG_VISIBILITY)

    finished_exactly(server, receiver, job, total)
    assert other.stop(signal.SIGTERM) == 0
