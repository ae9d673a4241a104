"""The chunk-size rule and the sampling of chunk timings, without a store; then the sizes the
README promises with every setting at its default, through the service on SQLite (and on AWS,
on the moto server, for its chunk overhead)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from fanout import task
from fanout.chunking import DEFAULT_SECONDS_PER_ITEM, STATS_WEIGHT, Sizing, TaskTimes, chunk_size
from fanout.models import TenantId
from fanout.service import Fanout, JobRequest
from fanout.settings import Settings
from fanout.wiring import build
from tests.aws.moto import fresh_settings
from tests.contract.support import BackendUnavailable, unavailable

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
    times = TaskTimes(stats, interval=0.0, settle=0.0)

    times.observe("a", 1.0, 1)
    times.observe("a", 3.0, 1)
    times.observe("a", 5.0, 1)

    assert stats.calls == [("a", 1.0, STATS_WEIGHT), ("a", 3.0, 1.0), ("a", 5.0, STATS_WEIGHT)]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_cold_first_chunk_is_replaced_by_what_ran_in_the_settle_after_it() -> None:
    stats, clock = Recorded(), Clock()
    times = TaskTimes(stats, interval=5.0, settle=0.5, clock=clock)

    times.observe("a", 0.010, 2)  # the first chunk, cold: written at once, a step of the average
    clock.now += 0.4
    times.observe("a", 0.002, 10)  # within the settle: held
    clock.now += 0.2
    times.observe("a", 0.001, 10)  # past it: both written as the one that replaces the cold one
    clock.now += 4.9
    times.observe("a", 0.003, 10)  # then a step every interval, no sooner
    clock.now += 0.2
    times.observe("a", 0.001, 10)

    assert [(task, weight) for task, _, weight in stats.calls] == [
        ("a", STATS_WEIGHT),
        ("a", 1.0),
        ("a", STATS_WEIGHT),
    ]
    assert [per_item for _, per_item, _ in stats.calls] == pytest.approx([0.005, 0.00015, 0.0002])


def test_a_failed_write_of_timings_is_dropped_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    TaskTimes(Recorded(fail=True)).observe("a", 1.0, 1)

    assert "could not record the timings of task 'a'" in caplog.text


# -- the defaults, as the README's "Chunk sizes" states them, through the service -----------------

TENANT = TenantId("default")
DEFAULT_OVERHEAD = 0.003  # README: FANOUT_CHUNK_OVERHEAD_SECONDS, 3 ms on the embedded backend
AWS_DEFAULT_OVERHEAD = 0.05  # and 50 ms on AWS


@task(name="test_chunking_never_measured")
def never_measured(item: int) -> int:
    return item


def defaults(tmp_path: Path, workers: int) -> Fanout:
    """The service as `fanout serve` builds it, every chunking setting at its default."""
    return build(Settings(data_dir=tmp_path / f"data-{workers}", workers=workers))


def measured(service: Fanout, task_name: str, seconds_per_item: float) -> Fanout:
    assert service.backend.stats is not None
    service.backend.stats.record_time(task_name, seconds_per_item, 1.0, time.time())
    return service


def sized(service: Fanout, task_name: str, items: Iterable[Any], **options: Any) -> int:
    request = JobRequest(task=task_name, items=items, params={}, **options)
    job, _ = service.submit(TENANT, request)
    return job.options.chunk_size


def readme_size(
    total: int, seconds_per_item: float, at_once: int, overhead: float = DEFAULT_OVERHEAD
) -> float:
    """√(n·c/(P·t)), at least c/t (README, "Chunk sizes")."""
    t, c = seconds_per_item, overhead
    return max(math.sqrt(total * c / (at_once * t)), c / t)


def test_by_default_a_hundred_no_op_items_are_one_chunk_and_a_million_about_a_hundred(
    tmp_path: Path,
) -> None:
    service = measured(defaults(tmp_path, workers=16), "echo", NO_OP)

    assert sized(service, "echo", range(100)) == 100
    size = sized(service, "echo", range(1_000_000))
    assert 8_000 <= size <= 10_000  # README: "a million about a hundred chunks of ~9,000"
    assert 90 <= chunks_of(1_000_000, size) <= 120
    # On two workers the rule asks for ~27,000 a chunk: FANOUT_MAX_CHUNK_ITEMS (10,000) holds.
    two = measured(defaults(tmp_path, workers=2), "echo", NO_OP)
    assert 9_000 <= sized(two, "echo", range(1_000_000)) <= 10_000


def test_by_default_a_task_of_a_second_an_item_gets_chunks_of_a_few_items(
    tmp_path: Path,
) -> None:
    assert 1 <= sized(measured(defaults(tmp_path, 16), "echo", 1.0), "echo", range(1000)) <= 3
    # On one worker the rule asks for ~12 items (12 s) a chunk of 50,000: at most
    # FANOUT_MAX_CHUNK_SECONDS (10 s) of work a chunk.
    one = measured(defaults(tmp_path, workers=1), "echo", 1.0)
    assert readme_size(50_000, 1.0, 1) > 12
    assert sized(one, "echo", range(50_000)) == 10


def test_a_job_s_size_follows_the_readme_s_rule_with_the_window_capped_by_the_workers(
    tmp_path: Path,
) -> None:
    """P is the job's max_concurrency capped by the workers: 2 workers, or a window of 4 on
    16 workers, or 16 workers under the default window of 16."""
    per_item, total = 1e-4, 20_000
    cases = [(2, {}, 2), (16, {"max_concurrency": 4}, 4), (16, {}, 16)]
    for workers, options, at_once in cases:
        service = measured(defaults(tmp_path, workers), "echo", per_item)
        expected = readme_size(total, per_item, at_once)

        size = sized(service, "echo", range(total), **options)

        # Evened out (the last chunk not a sliver): within a few percent of the rule.
        assert abs(size - expected) <= 0.05 * expected, (workers, options, size, expected)


def test_a_task_never_measured_is_sized_as_one_taking_a_millisecond_an_item(
    tmp_path: Path,
) -> None:
    service = defaults(tmp_path, workers=16)
    expected = readme_size(20_000, 1e-3, 16)

    size = sized(service, "test_chunking_never_measured", range(20_000))

    assert abs(size - expected) <= 0.05 * expected, (size, expected)
    assert size == sized(measured(service, "echo", 1e-3), "echo", range(20_000))


def test_on_aws_a_chunk_s_fixed_cost_is_taken_as_50_ms_by_default(tmp_path: Path) -> None:
    """README: FANOUT_CHUNK_OVERHEAD_SECONDS is 50 ms on AWS (a chunk's SQS, DynamoDB and S3
    round trips), so a job there gets fewer, bigger chunks than the same job on SQLite. The
    window (16 by default) is P: Lambda's workers are not counted."""
    try:
        aws, clients = fresh_settings(Settings(data_dir=tmp_path / "aws"))
    except BackendUnavailable as error:
        unavailable("the moto server", error)
    service = build(aws, clients)
    expected = readme_size(20_000, DEFAULT_SECONDS_PER_ITEM, 16, overhead=AWS_DEFAULT_OVERHEAD)

    size = sized(service, "test_chunking_never_measured", range(20_000))

    assert abs(size - expected) <= 0.05 * expected, (size, expected)
    assert size > 2 * readme_size(20_000, DEFAULT_SECONDS_PER_ITEM, 16)  # SQLite's 3 ms


def test_by_default_a_chunk_over_256_kib_is_halved_until_it_fits(tmp_path: Path) -> None:
    """A hundred items of 10 kB: one chunk by count, but 1 MB; halved twice, four chunks of
    25 items (250 kB each) are released."""
    service = measured(defaults(tmp_path, workers=16), "echo", NO_OP)

    assert sized(service, "echo", ["x" * 10_000] * 100) == 100

    released = []
    while deliveries := service.backend.queue.receive(10, 300.0):
        released += [(d.chunk.start, d.chunk.end) for d in deliveries]
    assert sorted(released) == [(0, 25), (25, 50), (50, 75), (75, 100)]
