"""`multiprocessing.Pool.map` as a benchmarked system: the floor for no-op and CPU-bound work.

No queue, no store, no results kept beyond the returned list: what the work costs with nothing
around it. Processes are spawned (not forked from the benchmark, whose memory they would share
and count), and started once, before any run.
"""

from __future__ import annotations

import functools
import multiprocessing
import multiprocessing.pool
from typing import Any

import psutil

from bench.peers import work
from bench.system import NOOP, BenchError, Run, RunTimedOut, Workload


class MultiprocessingSystem:
    name = "multiprocessing"

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.pool: multiprocessing.pool.Pool | None = None
        self.pids: list[int] = []

    def start(self) -> None:
        if self.pool is not None:
            return
        before = {p.pid for p in psutil.Process().children()}
        self.pool = multiprocessing.get_context("spawn").Pool(self.processes)
        self.pids = [p.pid for p in psutil.Process().children() if p.pid not in before]

    def root_pids(self) -> list[int]:
        return list(self.pids)

    def run(self, items: int, deadline: float, workload: Workload = NOOP) -> Run:
        import time

        assert self.pool is not None
        inputs = workload.items(items)
        function = functools.partial(work.call, workload.task, params=workload.params)
        started = time.perf_counter()
        pending = self.pool.map_async(function, inputs)
        try:
            outputs: list[Any] = pending.get(max(0.0, deadline - time.monotonic()))
        except multiprocessing.TimeoutError:
            self.stop()  # the only way to drop the rest of the map
            self.start()
            raise RunTimedOut(f"{self.name}: Pool.map had not returned by the deadline") from None
        seconds = time.perf_counter() - started
        if len(outputs) != items:
            raise BenchError(f"{self.name}: {len(outputs)} outputs, expected {items}")
        return Run(items, seconds, items, 0)

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None
            self.pids = []
