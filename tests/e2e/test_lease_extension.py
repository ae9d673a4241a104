"""The README's promise on `FANOUT_VISIBILITY_TIMEOUT`: a received chunk's lease is extended
while it runs. A chunk that runs for several visibility timeouts, beside an idle worker polling
the same queue, is never delivered to that second worker: each of its items runs once. On both
backends: SQLite's queue, and SQS (the moto server) under `fanout serve --backend aws`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import backends
from tests.e2e.harness import Launcher, Receiver, all_succeeded, the_one_webhook

# Seconds (SQS counts whole ones). The heartbeat extends the lease every third of it, so a beat
# may come up to two thirds of it late (a loaded machine) before the lease runs out.
VISIBILITY = 2
ITEM_SECONDS = 1.5  # each item's run: the chunk of three runs for over two visibility timeouts


@pytest.mark.parametrize("backend", backends.BACKENDS)
def test_a_chunk_running_past_its_visibility_timeout_is_not_delivered_again(
    fanout: Launcher, receiver: Receiver, tmp_path: Path, backend: str
) -> None:
    server = backends.serve(fanout, backend, FANOUT_VISIBILITY_TIMEOUT=str(VISIBILITY))
    items = [0, 1, 2]
    job = server.submit(
        {
            "task": "fail_until_fixed",  # with nothing to fail: notes each run of an item
            "items": items,
            "params": {"fail": [], "dir": str(tmp_path), "pause": ITEM_SECONDS},
            "chunk_size": len(items),
            "webhook": {"url": receiver.url},
        }
    )

    final = server.wait_for_job(job["id"], timeout=60)
    runs = (tmp_path / "runs").read_text().split()
    assert runs == ["0", "1", "2"], "a running chunk was delivered to a second worker"
    assert final["status"] == "succeeded"
    assert final["counts"] == all_succeeded(len(items))
    assert server.results(job["id"]) == [
        {"index": i, "status": "succeeded", "output": 10 * i} for i in items
    ]
    the_one_webhook(server, receiver, job["id"], job["webhook"]["secret"], timeout=60)
