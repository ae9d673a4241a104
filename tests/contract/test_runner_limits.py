"""An item nested deeper than a worker can read, in a chunk cut without re-reading its items
(whole intake batches of 1024): it fails alone, saying why, with no attempt made, and every
other item of its chunk runs. In-process, through `fanout.service.Fanout` on SQLite (the API
test of the same path, tests/api/test_errors.py, is not among the tests mutation runs).

Written to kill the mutants `python -m bench mutation` found surviving in `runner._validated`'s
depth check (issue 13). SQLite only; in tests/contract/ because the mutation run selects
this folder already (changing its selection resets every mutmut verdict).
"""

from __future__ import annotations

import json
from typing import Any

from fanout import intake
from fanout.models import JobStatus, TenantId
from fanout.service import Fanout, JobRequest

TENANT = TenantId("tenant-a")


def results(service: Fanout, job_id: Any) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for _, block in service.backend.jobs.result_blocks(job_id, 0):
        lines.extend(json.loads(line) for line in block.split(b"\n"))
    return lines


def test_a_too_deep_item_fails_alone_with_no_attempt_and_its_chunk_s_other_items_run(
    service: Fanout,
) -> None:
    nested: Any = []
    for _ in range(219):  # 220 levels: stored, but deeper than pydantic_core reads back (200)
        nested = [nested]
    items = [1] * 5 + [nested] + [2] * 2042
    job, _ = service.submit(
        TENANT, JobRequest(task="echo", items=items, params={}, chunk_size=1024)
    )

    for _ in range(10):
        deliveries = service.receive("worker")
        if not deliveries:
            break
        for delivery in deliveries:
            service.process(delivery)

    done = service.get(TENANT, job.id)
    assert (done.status, done.succeeded, done.failed) == (JobStatus.FAILED, 2047, 1)
    lines = results(service, job.id)
    assert [line["index"] for line in lines] == list(range(2048))
    assert lines[5] == {
        "index": 5,
        "status": "failed",
        "error": {"type": "ValueError", "message": intake.TOO_DEEP, "attempts": 0},
    }
    assert [line["output"] for line in lines[:5] + lines[6:8]] == [1] * 5 + [2] * 2
    # Usage counts the items run: the one refused before running made no attempt.
    assert done.usage.attempts == 2047
