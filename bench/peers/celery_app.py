"""The Celery application the Celery peer runs: one task per workload and a chord callback.

Configured from `BENCH_REDIS_URL` (Redis as broker and result backend, as the Celery docs'
first steps do), which the benchmark sets for the workers it starts and for itself.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import Celery

from bench.peers import work

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")

app = Celery("bench", broker=f"{REDIS_URL}/0", backend=f"{REDIS_URL}/1")
app.conf.update(
    task_default_queue="bench",
    # Plain JSON, as a Celery user would run it; no result expiry during a run.
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

_markers: redis.Redis | None = None


def done(results: list[Any], key: str) -> int:
    """The chord callback. Its side effect (RPUSH of the number of outputs to `key`) is what
    the benchmark waits for: `AsyncResult.get()` on a chord is known to hang."""
    global _markers
    count = sum(len(r) if isinstance(r, list) else 1 for r in results)
    if _markers is None:
        _markers = redis.Redis.from_url(f"{REDIS_URL}/2")
    _markers.rpush(key, count)
    return count


def load_done(results: list[Any], key: str) -> None:
    """The chord callback of `python -m bench load`: notes when the chord `key` completed (in
    a Redis hash the benchmark reads, as fanout's webhook receiver notes arrivals)."""
    global _markers
    if _markers is None:
        _markers = redis.Redis.from_url(f"{REDIS_URL}/2")
    _markers.hset("load-arrivals", key, time.time())


# Registered by call rather than as decorators: celery has no type hints, and an untyped
# decorator would make each function untyped under mypy --strict.
echo = app.task(name="bench.echo")(work.echo)
sleep = app.task(name="bench.sleep")(work.sleep)
sha256 = app.task(name="bench.sha256")(work.sha256)
chord_done = app.task(name="bench.done")(done)
chord_load_done = app.task(name="bench.load_done")(load_done)
TASKS = {"echo": echo, "sleep": sleep, "sha256": sha256}
