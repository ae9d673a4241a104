"""The README's promise on windowed dispatch: at most `max_concurrency` chunks of a job are queued
or running at once, so one huge job does not starve a small one. A small job submitted while a
huge one runs on the same workers finishes while most of the huge one has not even started."""

from __future__ import annotations

from tests.e2e.harness import Launcher, all_succeeded
from tests.waiting import wait_until

BIG_CHUNKS = 400
CHUNK = 5


def test_a_small_job_finishes_while_a_huge_job_submitted_first_has_most_of_its_work_unstarted(
    fanout: Launcher,
) -> None:
    server = fanout.serve(workers=2)
    big_total = BIG_CHUNKS * CHUNK
    # The default max_concurrency: the promise is the default's.
    big = server.submit(
        {
            "task": "pause_then_triple",
            "items": list(range(big_total)),
            "params": {"pause": 0.01},
            "chunk_size": CHUNK,
        }
    )
    wait_until(
        lambda: server.job(big["id"])["counts"]["succeeded"] > 0, 30, "the huge job to start"
    )

    small = server.submit(
        {"task": "pause_then_triple", "items": [1, 2, 3], "params": {"pause": 0.01}}
    )
    small_done = server.wait_for_job(small["id"], timeout=60)
    big_then = server.job(big["id"])

    assert small_done["status"] == "succeeded"
    assert small_done["counts"] == all_succeeded(3)
    assert big_then["status"] == "running"
    counts = big_then["counts"]
    # The small job's one chunk waited behind at most a window of the huge job's chunks, not
    # behind all of them: most of the huge job had not started when the small one ended.
    assert counts["pending"] > big_total / 2, counts
    assert server.client.post(f"/jobs/{big['id']}/cancel").status_code == 200
    assert server.wait_for_job(big["id"], timeout=30)["status"] == "cancelled"
