"""`/metrics` of the real `fanout serve`: what its worker processes count adds up in the one
scrape, exactly, a killed worker's counts included; the gauges say what is."""

from __future__ import annotations

import signal

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import Launcher, Receiver, Server, the_one_webhook
from tests.waiting import wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: Server) -> Samples:
    response = server.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counts_made_in_worker_processes_add_up_exactly_in_one_scrape(
    fanout: Launcher, receiver: Receiver
) -> None:
    server = fanout.serve(workers=2)
    body = {
        "task": "fail_odd",
        "items": list(range(40)),
        "chunk_size": 4,
        "tolerated_failure_count": 20,
    }
    job = server.submit({**body, "webhook": {"url": receiver.url}})
    the_one_webhook(server, receiver, job["id"], job["webhook"]["secret"])

    samples = scrape(server)

    assert value(samples, "fanout_jobs_submitted_total", task="fail_odd") == 1
    assert value(samples, "fanout_jobs_finished_total", status="succeeded") == 1
    assert value(samples, "fanout_items_total", outcome="succeeded") == 20
    assert value(samples, "fanout_items_total", outcome="failed") == 20
    assert value(samples, "fanout_chunk_duration_seconds_count", task="fail_odd") == 10
    assert value(samples, "fanout_webhook_attempts_total", outcome="delivered") == 1
    assert value(samples, "fanout_live_workers") == 2
    assert value(samples, "fanout_unstarted_chunks") == 0
    assert value(samples, "fanout_undelivered_webhooks") == 0


def test_a_killed_worker_is_not_live_but_its_counts_stay(fanout: Launcher) -> None:
    server = fanout.serve(workers=2)
    job = server.submit({"task": "echo", "items": list(range(30)), "chunk_size": 3})
    server.wait_for_job(job["id"], 30)
    before = scrape(server)
    [victim, _] = server.process.workers()

    victim.send_signal(signal.SIGKILL)
    wait_until(lambda: victim.pid not in [w.pid for w in server.process.workers()], 10, "the kill")

    def replaced() -> Samples | None:
        samples = scrape(server)
        return samples if value(samples, "fanout_live_workers") == 2 else None

    after = wait_until(replaced, 30, "the supervisor to replace the worker")

    assert value(before, "fanout_items_total", outcome="succeeded") == 30
    assert value(after, "fanout_items_total", outcome="succeeded") == 30
    assert value(after, "fanout_chunk_duration_seconds_count", task="echo") == 10
