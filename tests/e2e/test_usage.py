"""Each job's usage (chunks, attempts, worker seconds; on AWS its requests and their price), on
both backends, against the real `fanout serve`."""

from __future__ import annotations

from pathlib import Path

import pytest

from fanout import pricing
from tests.e2e import backends
from tests.e2e.harness import Launcher

ITEMS = 12
CHUNK = 3


@pytest.mark.parametrize("backend", backends.BACKENDS)
def test_a_job_shows_its_chunks_attempts_worker_seconds_and_request_cost(
    fanout: Launcher, tmp_path: Path, backend: str
) -> None:
    server = backends.serve(fanout, backend)
    job = server.submit(
        {
            "task": "retry_once",
            "items": list(range(ITEMS)),
            "params": {"dir": str(tmp_path)},
            "chunk_size": CHUNK,
        }
    )
    done = server.wait_for_job(job["id"], 60)
    assert done["status"] == "succeeded"
    usage = done["usage"]
    assert usage["chunks"] == ITEMS // CHUNK
    assert usage["attempts"] == 2 * ITEMS  # every item asked for one retry
    assert usage["worker_seconds"] > 0
    if backend == "sqlite":
        assert (usage["requests"], usage["cost"], usage["cost_usd"]) == ({}, {}, None)
        return
    requests = usage["requests"]
    assert set(requests) <= set(pricing.USAGE_PRICES)
    assert requests["dynamodb write units"] >= 3 * ITEMS // CHUNK  # start, record, count
    assert requests["sqs requests"] >= ITEMS // CHUNK  # each chunk's message, at least
    assert usage["cost_usd"] == pytest.approx(sum(usage["cost"].values()))
    assert 0 < usage["cost_usd"] < 0.001
