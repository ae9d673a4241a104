"""How many items a chunk gets, from the job's size and the task's measured time per item.

A chunk has a fixed cost besides its items (a queue message, a start and a record in the store,
the worker's round trip): too small a chunk spends the workers on that; too large a chunk leaves
workers idle at the end while the last one runs, and makes a slow task's progress, retries and
lost work coarse. Each task's seconds per item is measured from its finished chunks and kept in
the store (`TaskStats`), so the next job of that task is cut to fit.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fanout.ports import TaskStats

# A task never measured is assumed to take 1 ms an item: a thousand-item job of it still
# spreads over a few workers, and one that is really slow gets chunks of a few items.
DEFAULT_SECONDS_PER_ITEM = 0.001
# How much a new measurement moves a task's average: recent runs count most (a task's cost
# changes with its code and its inputs), yet one odd chunk does not swing it.
STATS_WEIGHT = 0.3
STATS_INTERVAL = 5.0  # seconds between a process's writes of one task's timings
# A process's first chunk of a task runs cold (its first call builds decoders, fills caches:
# echo's took 5 µs an item against 0.6 µs warm), so the measurement after it comes this soon
# and replaces it, rather than taking a 30 % step every STATS_INTERVAL: a new task's small jobs
# were cut in 1.4-1.7 chunks each for their first 8 s under load, one each once measured warm.
SETTLE = 0.5
log = logging.getLogger("fanout.chunking")


@dataclass(frozen=True)
class Sizing:
    """What a chunk costs besides its items, and the bounds on its size."""

    overhead_seconds: float
    max_items: int
    max_seconds: float


def chunk_size(total: int, seconds_per_item: float | None, workers: int, sizing: Sizing) -> int:
    """Items per chunk for a job of `total` items run by `workers` chunks at a time.

    n items in chunks of s on P workers take about n/(P·s)·(c + s·t) + s·t: every chunk's
    overhead c and items, shared by the workers, then the tail while the last chunk runs alone.
    That is least at s = √(n·c / (P·t)), the classic trade-off of fixed-size chunking (Kruskal
    and Weiss, "Allocating independent subtasks on parallel processors", 1985). So a big job
    of a fast task gets big chunks, yet always about √(n·P·t/c) of them, enough for every
    worker once its work outweighs the overheads; a slow task gets small ones. That model sees
    one job on idle workers; on busy ones every chunk's overhead is work taken from other jobs,
    so a chunk also carries at least as much work as its overhead (s ≥ c/t: many small jobs
    of a fast task are one chunk each). A chunk's work is kept under `max_seconds`, its size
    within 1..`max_items`; the chunks are then evened out, so the last is not a sliver."""
    if total <= 1:
        return 1
    per_item = seconds_per_item if seconds_per_item and seconds_per_item > 0 else None
    t = per_item or DEFAULT_SECONDS_PER_ITEM
    c = sizing.overhead_seconds
    ideal = max(math.sqrt(total * c / (max(1, workers) * t)), c / t)
    size = max(1, min(ideal, sizing.max_seconds / t, sizing.max_items, total))
    chunks = math.ceil(total / math.floor(size))
    return math.ceil(total / chunks)


class TaskTimes:
    """Chunk timings of this process, written to the store now and then: a task's first chunk
    at once (so the next job of a new task is sized by it), everything run in the `settle`
    seconds after it as the measurement that replaces that cold one, then at most every
    `interval` seconds everything run since the last write as one measurement, a STATS_WEIGHT
    step of the average. A failed write is logged and dropped: it is a statistic, never a
    reason to fail a chunk."""

    def __init__(
        self,
        stats: TaskStats,
        interval: float = STATS_INTERVAL,
        settle: float = SETTLE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stats = stats
        self.interval = interval
        self.settle = settle
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[float, int]] = {}
        self._written: dict[str, float] = {}
        self._cold: set[str] = set()  # tasks whose last write was this process's first chunk

    def observe(self, task: str, seconds: float, items: int) -> None:
        if items <= 0:
            return
        now = self.clock()
        with self._lock:
            spent, count = self._pending.get(task, (0.0, 0))
            spent, count = spent + seconds, count + items
            cold = task in self._cold
            wait = self.settle if cold else self.interval
            if now - self._written.get(task, -math.inf) < wait:
                self._pending[task] = (spent, count)
                return
            if task not in self._written:
                self._cold.add(task)
            else:
                self._cold.discard(task)
            self._pending.pop(task, None)
            self._written[task] = now
        weight = 1.0 if cold else STATS_WEIGHT
        try:
            self.stats.record_time(task, spent / count, weight, time.time())
        except Exception:
            log.warning("could not record the timings of task %r", task, exc_info=True)
