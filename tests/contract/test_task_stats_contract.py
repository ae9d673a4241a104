"""The TaskStats port on every backend: each task's moving average of seconds per item."""

from __future__ import annotations

import time

import pytest

from fanout.ports import TaskStats
from fanout.service import Backend


@pytest.fixture
def stats(backend: Backend) -> TaskStats:
    assert backend.stats is not None, "every backend measures its tasks"
    return backend.stats


def test_a_task_never_measured_has_no_average(stats: TaskStats) -> None:
    assert stats.seconds_per_item("never-ran") is None


def test_the_first_measurement_is_the_average(stats: TaskStats) -> None:
    stats.record_time("first", 0.25, 0.3, time.time())

    assert stats.seconds_per_item("first") == pytest.approx(0.25)


def test_each_measurement_moves_the_average_by_its_weight(stats: TaskStats) -> None:
    stats.record_time("moving", 1.0, 0.5, time.time())
    stats.record_time("moving", 3.0, 0.5, time.time())
    stats.record_time("moving", 3.0, 0.25, time.time())

    # 1.0, then halfway to 3.0 (2.0), then a quarter of the way to 3.0 (2.25).
    assert stats.seconds_per_item("moving") == pytest.approx(2.25)


def test_tasks_are_measured_apart(stats: TaskStats) -> None:
    stats.record_time("fast", 1e-6, 0.3, time.time())
    stats.record_time("slow", 2.0, 0.3, time.time())

    assert stats.seconds_per_item("fast") == pytest.approx(1e-6)
    assert stats.seconds_per_item("slow") == pytest.approx(2.0)
