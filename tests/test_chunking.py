"""The chunk-size rule and the sampling of chunk timings, without a store."""

from __future__ import annotations

import math

import pytest

from fanout.chunking import DEFAULT_SECONDS_PER_ITEM, STATS_WEIGHT, Sizing, TaskTimes, chunk_size

SIZING = Sizing(overhead_seconds=0.003, max_items=10_000, max_seconds=10.0)
NO_OP = 2e-6  # what `echo` measures at here, seconds an item
SLOW = 1.0


def chunks_of(total: int, size: int) -> int:
    return math.ceil(total / size)


def test_a_fast_task_gets_big_chunks_and_a_slow_one_small_chunks() -> None:
    fast = chunk_size(100_000, NO_OP, 2, SIZING)
    slow = chunk_size(100_000, SLOW, 2, SIZING)

    assert fast >= 1000
    assert slow * SLOW <= SIZING.max_seconds
    assert chunk_size(100, SLOW, 2, SIZING) == 1


def test_a_small_job_of_a_fast_task_is_one_chunk() -> None:
    for total in (10, 50, 100):
        assert chunk_size(total, NO_OP, 16, SIZING) == total


def test_a_big_job_still_spreads_over_every_worker() -> None:
    for workers in (2, 16, 64):
        for per_item in (NO_OP, 1e-4, 1e-3, SLOW):
            size = chunk_size(1_000_000, per_item, workers, SIZING)
            assert chunks_of(1_000_000, size) >= workers


def test_more_workers_get_smaller_chunks() -> None:
    sizes = [chunk_size(100_000, 1e-3, workers, SIZING) for workers in (1, 4, 16)]

    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] > sizes[-1]


def test_the_limits_hold_whatever_the_measurement() -> None:
    tight = Sizing(overhead_seconds=0.05, max_items=500, max_seconds=2.0)
    for per_item in (None, 0.0, 1e-9, NO_OP, 1e-3, 0.5, 10.0, 1000.0):
        for total in (1, 2, 7, 999, 1_000_000):
            size = chunk_size(total, per_item, 4, tight)
            assert 1 <= size <= min(total, 500)
            if per_item and per_item * size > 2.0:
                assert size == 1  # only a single item may run past max_seconds


def test_a_chunk_runs_at_most_max_seconds_of_a_slow_task() -> None:
    size = chunk_size(
        100_000, 0.1, 1, Sizing(overhead_seconds=10.0, max_items=10_000, max_seconds=2.0)
    )

    assert size * 0.1 <= 2.0


def test_a_task_never_measured_gets_the_default_rule() -> None:
    unmeasured = chunk_size(100_000, None, 4, SIZING)

    assert unmeasured == chunk_size(100_000, DEFAULT_SECONDS_PER_ITEM, 4, SIZING)
    assert 1 < unmeasured < 1000  # neither one item a chunk, nor a few chunks for 4 workers
    assert chunks_of(100_000, unmeasured) >= 4
    assert chunk_size(10, None, 4, SIZING) < 10  # ten items of an unknown task still spread


def test_chunks_are_evened_out() -> None:
    size = chunk_size(1001, 1e-5, 1, Sizing(overhead_seconds=0.01, max_items=500, max_seconds=10))

    # 1001 items under a cap of 500 make three chunks: 334, 334 and 333, not 500, 500 and 1.
    assert size == 334


class Recorded:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, float, float]] = []
        self.fail = fail

    def seconds_per_item(self, task: str) -> float | None:
        return None

    def record_time(self, task: str, seconds_per_item: float, weight: float, now: float) -> None:
        if self.fail:
            raise OSError("the disk is full")
        self.calls.append((task, seconds_per_item, weight))


def test_a_task_s_first_chunk_is_written_at_once_then_sums_every_interval() -> None:
    stats = Recorded()
    times = TaskTimes(stats, interval=3600.0)

    times.observe("a", 2.0, 4)
    times.observe("a", 1.0, 1)
    times.observe("b", 3.0, 3)

    assert stats.calls == [("a", 0.5, STATS_WEIGHT), ("b", 1.0, STATS_WEIGHT)]


def test_what_ran_since_the_last_write_is_written_as_one_measurement() -> None:
    stats = Recorded()
    times = TaskTimes(stats, interval=0.0)

    times.observe("a", 1.0, 1)
    times.observe("a", 3.0, 1)

    assert stats.calls == [("a", 1.0, STATS_WEIGHT), ("a", 3.0, STATS_WEIGHT)]


def test_a_failed_write_of_timings_is_dropped_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    TaskTimes(Recorded(fail=True)).observe("a", 1.0, 1)

    assert "could not record the timings of task 'a'" in caplog.text
