"""`/metrics` in one process (as under Lambda or in these in-process tests): counters in memory,
the backlog read from the store."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fanout.api.deps import DEFAULT_TENANT
from fanout.models import JobId
from fanout.service import Fanout
from tests.api.conftest import drain

pytestmark = pytest.mark.anyio


async def scrape(client: httpx.AsyncClient) -> dict[str, float]:
    text = (await client.get("/metrics")).text
    return {
        sample.name + str(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_a_job_and_show_the_backlog(
    client: httpx.AsyncClient, service: Fanout
) -> None:
    before = await scrape(client)
    body = {"task": "tests_api_fail_negatives", "items": [1, -2, 3], "chunk_size": 1}
    job_id = (await client.post("/jobs", json=body)).json()["id"]
    await drain(service, lambda: service.get(DEFAULT_TENANT, JobId(job_id)).status.terminal)
    after = await scrape(client)

    def grew(name: str, **labels: str) -> float:
        key = name + str(sorted(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("fanout_jobs_submitted_total", task="tests_api_fail_negatives") == 1
    assert grew("fanout_jobs_finished_total", status="failed") == 1
    assert (
        grew("fanout_items_total", outcome="succeeded"),
        grew("fanout_items_total", outcome="failed"),
    ) == (2, 1)
    assert grew("fanout_chunk_duration_seconds_count", task="tests_api_fail_negatives") == 3
    # Fanout.backlog() is counted at most once a second: here it is only there.
    assert {"fanout_unstarted_chunks[]", "fanout_undelivered_webhooks[]"} <= set(after)
    assert "fanout_live_workers[]" not in after, "no supervisor, so no such gauge"
