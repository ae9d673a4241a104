"""Prometheus metrics (prometheus-client), served at `/metrics`.

Two kinds, counted where they can be counted right:

- What happens, as counters and a histogram, where it happens: jobs submitted (API) and ended
  (wherever the terminal transition is won: a worker process, the reconciler, a cancel), item
  outcomes and chunk durations (worker processes), webhook attempts (the notifier). Chunks run
  in worker processes, so `fanout serve` gives its process tree one directory for
  prometheus-client's multiprocess mode (each process writes its own file; a scrape sums them,
  a dead worker's counts included). An item is counted once, when its chunk's result is first
  recorded, so redelivery does not count it twice.
- What is, as gauges read when scraped: the backlog from the store (`Fanout.backlog()`, shared by
  every process) and the live worker processes from the supervisor.

Counters start from zero when `fanout serve` starts, as Prometheus expects of a process.
Nothing here imports prometheus-client until a metric is first used, because its multiprocess
mode is chosen from the environment at import (`use_directory` must come first).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram

    from fanout.service import Fanout

DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
# Chunks run from milliseconds to the chunk timeout (900 s by default).
CHUNK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)


def use_directory(directory: Path) -> None:
    """Count across this process and the processes it starts, in `directory` (made empty by
    the caller). Call before anything counts."""
    os.environ[DIRECTORY] = str(directory)


@dataclass(frozen=True)
class _Metrics:
    jobs_submitted: Counter
    jobs_finished: Counter
    items: Counter
    chunk_seconds: Histogram
    webhook_attempts: Counter


_made = threading.Lock()


def _metrics() -> _Metrics:
    # functools.cache lets two threads' first calls both build (and register) the metrics:
    # prometheus_client then raises DuplicateTimeseries, and that POST answered 500.
    with _made:
        return _build()


@functools.cache
def _build() -> _Metrics:
    from prometheus_client import Counter, Histogram

    metrics = _Metrics(
        Counter("fanout_jobs_submitted", "Jobs accepted (202).", ["task"]),
        Counter("fanout_jobs_finished", "Jobs that ended, by final status.", ["status"]),
        Counter("fanout_items", "Item outcomes recorded, each once.", ["outcome"]),
        Histogram(
            "fanout_chunk_duration_seconds",
            "Time to run a chunk's items.",
            ["task"],
            buckets=CHUNK_BUCKETS,
        ),
        Counter("fanout_webhook_attempts", "Webhook delivery attempts, by outcome.", ["outcome"]),
    )
    # Every series shows, at zero, before its first event.
    for status in ("succeeded", "failed", "cancelled"):
        metrics.jobs_finished.labels(status)
    for outcome in ("succeeded", "failed"):
        metrics.items.labels(outcome)
    for outcome in ("delivered", "retrying", "failed"):
        metrics.webhook_attempts.labels(outcome)
    return metrics


def job_submitted(task: str) -> None:
    _metrics().jobs_submitted.labels(task).inc()


def job_finished(status: str) -> None:
    _metrics().jobs_finished.labels(status).inc()


def items_recorded(succeeded: int, failed: int) -> None:
    _metrics().items.labels("succeeded").inc(succeeded)
    _metrics().items.labels("failed").inc(failed)


def chunk_ran(task: str, seconds: float) -> None:
    _metrics().chunk_seconds.labels(task).observe(seconds)


def webhook_attempt(delivered: bool, retrying: bool) -> None:
    """`delivered`; or `retrying` (another attempt is scheduled); or `failed` for good."""
    outcome = "delivered" if delivered else "retrying" if retrying else "failed"
    _metrics().webhook_attempts.labels(outcome).inc()


class _State:
    """The gauges, read at each scrape."""

    def __init__(self, service: Fanout, live_workers: Callable[[], int] | None) -> None:
        self.service = service
        self.live_workers = live_workers

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        backlog = self.service.backlog()
        yield GaugeMetricFamily(
            "fanout_unstarted_chunks", "Chunks not started yet.", backlog.unstarted_chunks
        )
        yield GaugeMetricFamily(
            "fanout_undelivered_webhooks",
            "Completion webhooks not delivered yet.",
            backlog.undelivered_webhooks,
        )
        settings = self.service.settings
        yield GaugeMetricFamily(
            "fanout_max_unstarted_chunks",
            "Backpressure: POST /jobs answers 429 at this many unstarted chunks.",
            settings.max_unstarted_chunks,
        )
        yield GaugeMetricFamily(
            "fanout_max_undelivered_webhooks",
            "Backpressure: POST /jobs answers 429 at this many undelivered webhooks.",
            settings.max_undelivered_webhooks,
        )
        if self.live_workers is not None:
            yield GaugeMetricFamily(
                "fanout_live_workers", "Worker processes alive.", self.live_workers()
            )


def exposition(service: Fanout, live_workers: Callable[[], int] | None) -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, and its content type."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
        multiprocess,
    )

    _metrics()
    registry = CollectorRegistry()
    registry.register(_State(service, live_workers))
    if DIRECTORY in os.environ:
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # unannotated upstream
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY) + generate_latest(registry), CONTENT_TYPE_LATEST
