"""Running a delivered chunk, through `fanout.service.Fanout` on SQLite with the queue driven by
hand: the job's params reach the task, an async task runs at most `async_concurrency` items at
once, the time a chunk ran is what the job's usage and `/metrics` say (and nothing else), a
chunk that is no longer live is acknowledged without running, a duplicate delivery runs
nothing twice, dead letters go one to a worker under that worker's lease, and reclaiming a dead
worker hands back its deliveries only.

Written to kill the mutants `python -m bench mutation` found surviving in
`fanout/service/running.py` and `fanout/runner.py` (issue 13). SQLite only; in tests/contract/
because the mutation run selects this folder already (changing its selection resets every
mutmut verdict).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from fanout import metrics, task
from fanout.models import ChunkRef, Job, JobStatus, TenantId
from fanout.service import Fanout, JobRequest
from fanout.settings import Settings
from fanout.wiring import build

TENANT = TenantId("tenant-a")
SLOW = "test_running_edges_slow"
CALLS: list[tuple[str, Any]] = []


@task(name="test_running_edges_scaled")
def scaled(item: int, params: dict[str, Any]) -> int:
    return item * int(params["factor"])


@task(name=SLOW)
def slow(item: float) -> float:
    time.sleep(item)  # the work itself: a chunk that takes a known minimum of time
    return item


@task(name="test_running_edges_counted")
def counted(item: str) -> str:
    CALLS.append(("counted", item))
    return item


class _InFlight:
    """How many items of the async task run at once, and the most there ever were."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.lock = threading.Lock()


IN_FLIGHT = _InFlight()


@task(name="test_running_edges_overlapping")
async def overlapping(item: int) -> int:
    with IN_FLIGHT.lock:
        IN_FLIGHT.now += 1
        IN_FLIGHT.most = max(IN_FLIGHT.most, IN_FLIGHT.now)
    await asyncio.sleep(0.01)  # the work: every item awaits, so items can overlap
    with IN_FLIGHT.lock:
        IN_FLIGHT.now -= 1
    return item


def submit(service: Fanout, items: list[Any], task: str, **options: Any) -> Job:
    request = JobRequest(task=task, items=items, params=options.pop("params", {}), **options)
    job, _ = service.submit(TENANT, request)
    return job


def run_all(service: Fanout, job: Job) -> Job:
    """Receive and process the job's chunks until it ends (bounded: one pass per chunk)."""
    for _ in range(job.total + 1):
        deliveries = service.receive("worker")
        if not deliveries:
            break
        for delivery in deliveries:
            service.process(delivery)
    done = service.get(TENANT, job.id)
    assert done.status.terminal
    return done


def outputs(service: Fanout, job: Job) -> list[Any]:
    lines: list[Any] = []
    for _, block in service.backend.jobs.result_blocks(job.id, 0):
        lines.extend(block.split(b"\n"))
    return [json.loads(line).get("output") for line in lines]


def at_once(settings: Settings) -> Fanout:
    """A service whose deliveries are visible again at once (a visibility timeout of 0), so a
    message left in the queue shows on the next receive."""
    return build(settings.model_copy(update={"visibility_timeout": 0.0}))


# -- what the task gets -------------------------------------------------------------------------


def test_the_job_s_params_reach_a_task_that_takes_them(service: Fanout) -> None:
    job = submit(service, [1, 2, 3], "test_running_edges_scaled", params={"factor": 7})

    done = run_all(service, job)

    assert (done.status, outputs(service, job)) == (JobStatus.SUCCEEDED, [7, 14, 21])


def test_an_async_task_runs_at_most_async_concurrency_items_of_a_chunk_at_once(
    settings: Settings,
) -> None:
    service = build(settings.model_copy(update={"async_concurrency": 3}))
    IN_FLIGHT.most = 0
    job = submit(service, list(range(12)), "test_running_edges_overlapping", chunk_size=12)

    done = run_all(service, job)

    assert (done.status, done.succeeded) == (JobStatus.SUCCEEDED, 12)
    assert IN_FLIGHT.most == 3  # overlapping, and never past the setting


# -- the time a chunk ran -----------------------------------------------------------------------


def chunk_seconds(service: Fanout, task_name: str) -> tuple[float, float]:
    """The `fanout_chunk_duration_seconds` histogram's (count, sum) for one task, as `/metrics`
    serves it."""
    text, _ = metrics.exposition(service, None)
    values = {"count": 0.0, "sum": 0.0}
    for family in text_string_to_metric_families(text.decode()):
        if family.name != "fanout_chunk_duration_seconds":
            continue
        for sample in family.samples:
            if sample.labels.get("task") == task_name and sample.name.endswith(("_count", "_sum")):
                values[sample.name.rsplit("_", 1)[1]] = sample.value
    return values["count"], values["sum"]


def test_the_time_chunks_ran_is_in_the_job_s_usage_and_in_metrics_no_more_no_less(
    service: Fanout,
) -> None:
    """Three chunks of two items, each item taking 20 ms: the job's `worker_seconds` and the
    task's chunk-duration histogram hold at least the 120 ms the items took, and at most the
    time the whole run took (a clock read the wrong way round would be hours off)."""
    count_before, sum_before = chunk_seconds(service, SLOW)
    job = submit(service, [0.02] * 6, SLOW, chunk_size=2)

    began = time.monotonic()
    done = run_all(service, job)
    elapsed = time.monotonic() - began

    assert done.status is JobStatus.SUCCEEDED and done.usage.chunks == 3
    assert 0.12 <= done.usage.worker_seconds <= elapsed
    count_after, sum_after = chunk_seconds(service, SLOW)
    assert count_after - count_before == 3  # one observation per chunk, under the task's name
    assert 0.12 <= sum_after - sum_before <= elapsed


# -- deliveries that must not run ---------------------------------------------------------------


def test_a_chunk_of_a_cancelled_job_is_acknowledged_without_running(settings: Settings) -> None:
    service = at_once(settings)
    CALLS.clear()
    job = submit(service, ["a", "b"], "test_running_edges_counted")
    [delivery] = service.receive("worker")
    service.cancel(TENANT, job.id)

    service.process(delivery)

    assert CALLS == []
    assert service.receive("another", 10) == []  # its message is gone, not waiting to return


def test_a_duplicate_delivery_of_a_recorded_chunk_runs_nothing_again(service: Fanout) -> None:
    """At-least-once: the same message delivered twice (a receipt processed again after its
    record) is acknowledged, its items not run again, the counts unchanged."""
    CALLS.clear()
    job = submit(service, ["a", "b", "c"], "test_running_edges_counted", chunk_size=3)
    [delivery] = service.receive("worker")
    service.process(delivery)
    assert CALLS == [("counted", "a"), ("counted", "b"), ("counted", "c")]

    service.process(delivery)

    assert len(CALLS) == 3
    done = service.get(TENANT, job.id)
    assert (done.status, done.succeeded, done.usage.chunks) == (JobStatus.SUCCEEDED, 3, 1)


# -- dead letters and leases --------------------------------------------------------------------


def dead_letters(service: Fanout) -> None:
    """Each job's one chunk received until the queue gives up on it (its worker died every
    time: never recorded, never deleted)."""
    for _ in range(service.settings.max_receive_count + 1):
        service.receive("dying-worker", 10)


def test_a_worker_takes_one_dead_letter_at_a_time(settings: Settings) -> None:
    service = build(settings)
    jobs = [submit(service, [i], "test_running_edges_counted") for i in ("x", "y")]
    dead_letters(at_once(settings))

    first = service.receive_dead_letters("bisector")
    second = service.receive_dead_letters("another-bisector", 10)

    assert len(first) == 1 and len(second) == 1
    assert {first[0].chunk, second[0].chunk} == {ChunkRef(j.id, 0, 1) for j in jobs}


def test_a_dead_letter_held_by_a_worker_that_died_is_handed_back_to_another(
    settings: Settings,
) -> None:
    """The bisector's lease on a dead letter is its own: when it dies, reclaiming it hands
    the dead letter back at once (the visibility timeout is a minute)."""
    service = build(settings)
    job = submit(service, ["x"], "test_running_edges_counted")
    dead_letters(at_once(settings))
    [held] = service.receive_dead_letters("bisector")
    assert service.receive_dead_letters("another") == []

    assert service.reclaim("bisector") == 1

    assert [d.chunk for d in service.receive_dead_letters("another")] == [held.chunk]
    assert held.chunk == ChunkRef(job.id, 0, 1)


def test_reclaiming_one_dead_worker_hands_back_its_chunks_only(settings: Settings) -> None:
    """Both workers heartbeat; `reclaim("dead")` takes back what `dead` held, never what the
    live one holds (a reclaim of every silent worker would take nothing here)."""
    service = build(settings)
    job = submit(service, ["a", "b"], "test_running_edges_counted", chunk_size=1)
    [lost] = service.receive("dead")
    [kept] = service.receive("alive")
    service.heartbeat("dead")
    service.heartbeat("alive")

    assert service.reclaim("dead") == 1

    assert [d.chunk for d in service.receive("another", 10)] == [lost.chunk]
    assert {lost.chunk, kept.chunk} == {ChunkRef(job.id, 0, 1), ChunkRef(job.id, 1, 2)}
