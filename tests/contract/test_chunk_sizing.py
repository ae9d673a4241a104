"""Chunk sizes chosen by `Fanout.submit` from the task's measured time per item, on every
backend: the measurement is recorded as chunks run and read back when the next job comes."""

from __future__ import annotations

import time

import pytest

from fanout import task, tasks
from fanout.models import ChunkRef, Job, TenantId
from fanout.service import Backend, Fanout, JobRequest
from fanout.settings import Settings

tasks.load([])  # the built-in `echo`, as `fanout.wiring.build` loads it
TENANT = TenantId("tenant-a")
LONG = 300.0
SLEEP = 0.02


@task(name="test_sizing_sleepy")
def sleepy(item: int) -> int:
    time.sleep(SLEEP)
    return item


@task(name="test_sizing_fresh")
def fresh(item: int) -> int:
    return item


@task(name="test_sizing_newcomer")
def newcomer(item: int) -> int:
    return item


def service_on(backend: Backend, settings: Settings, **overrides: object) -> Fanout:
    return Fanout(backend, settings.model_copy(update={"workers": 2, **overrides}))


def submit(service: Fanout, task_name: str, total: int, **options: object) -> Job:
    request = JobRequest(task=task_name, items=range(total), params={}, **options)  # type: ignore[arg-type]  # options are JobRequest's fields
    job, _ = service.submit(TENANT, request)
    return job


def released(service: Fanout) -> list[ChunkRef]:
    """The chunks the job's first window put in the queue, in input order."""
    found: list[ChunkRef] = []
    while deliveries := service.backend.queue.receive(10, LONG):
        found += [d.chunk for d in deliveries]
    return sorted(found, key=lambda chunk: chunk.start)


def measure(backend: Backend, task_name: str, seconds_per_item: float) -> None:
    assert backend.stats is not None
    backend.stats.record_time(task_name, seconds_per_item, 1.0, time.time())


def test_a_fast_task_gets_big_chunks(backend: Backend, settings: Settings) -> None:
    measure(backend, "echo", 2e-6)
    service = service_on(backend, settings)

    small = submit(service, "echo", 100)
    big = submit(service, "echo", 50_000, max_concurrency=4)

    assert small.options.chunk_size == 100  # one chunk: splitting would only add overhead
    assert big.options.chunk_size >= 5_000
    assert big.options.chunk_size * 2 <= 50_000  # yet both workers get a share


def test_a_slow_task_gets_small_chunks(backend: Backend, settings: Settings) -> None:
    measure(backend, "echo", 1.0)
    service = service_on(backend, settings, max_chunk_seconds=5.0)

    job = submit(service, "echo", 200, max_concurrency=3)

    assert 1 <= job.options.chunk_size <= 5
    assert [c.size for c in released(service)] == [job.options.chunk_size] * 3


def test_an_explicit_chunk_size_wins(backend: Backend, settings: Settings) -> None:
    measure(backend, "echo", 1.0)
    service = service_on(backend, settings)

    job = submit(service, "echo", 100, chunk_size=40, max_concurrency=10)

    assert job.options.chunk_size == 40
    assert [(c.start, c.end) for c in released(service)] == [(0, 40), (40, 80), (80, 100)]


def test_the_limits_hold(backend: Backend, settings: Settings) -> None:
    measure(backend, "echo", 1e-9)
    service = service_on(backend, settings, max_chunk_items=30, max_chunk_bytes=64)

    job = submit(service, "echo", 300, max_concurrency=100)

    assert job.options.chunk_size == 30
    chunks = released(service)
    assert chunks[0].start == 0 and chunks[-1].end == 300
    assert all(c.size <= 30 for c in chunks)
    for chunk in chunks:
        items = service.backend.chunks.start_chunk(chunk, time.time())
        assert items is not None and len(items) <= 64


def test_a_task_never_measured_gets_a_default_that_spreads(
    backend: Backend, settings: Settings
) -> None:
    service = service_on(backend, settings)

    job = submit(service, "test_sizing_fresh", 10_000, max_concurrency=100)

    assert 1 < job.options.chunk_size < 10_000 // 2


def test_a_new_task_s_first_measurement_sizes_its_very_next_job(
    backend: Backend, settings: Settings
) -> None:
    service = service_on(backend, settings)
    first = submit(service, "test_sizing_newcomer", 1000, max_concurrency=8)
    assert first.options.chunk_size < 1000  # never measured: 1 ms an item is assumed

    measure(backend, "test_sizing_newcomer", 2e-6)  # its first chunk's time, written at once

    assert (
        submit(service, "test_sizing_newcomer", 1000, max_concurrency=8).options.chunk_size == 1000
    )


def test_running_chunks_records_the_task_s_time_per_item(
    backend: Backend, settings: Settings
) -> None:
    service = service_on(backend, settings)
    submit(service, "test_sizing_sleepy", 4, chunk_size=2)
    assert backend.stats is not None

    for delivery in service.backend.queue.receive(1, LONG):
        service.process(delivery)

    measured = backend.stats.seconds_per_item("test_sizing_sleepy")
    assert measured is not None and measured >= SLEEP  # each item sleeps that long at least
    assert submit(service, "test_sizing_sleepy", 1000, max_concurrency=8).options.chunk_size < 100


@pytest.mark.parametrize("total", [0, 1])
def test_tiny_jobs_are_one_chunk_or_none(backend: Backend, settings: Settings, total: int) -> None:
    job = submit(service_on(backend, settings), "echo", total)

    assert job.options.chunk_size == 1
    assert len(released(service_on(backend, settings))) == total
