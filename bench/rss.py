"""Peak resident memory of process trees, sampled in a background thread.

The sum of RSS counts pages that forked processes share once per process, so it overstates
what the tree really uses (PSS would not); it is the figure the issue's target is set in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psutil

# Finding the descendants scans every process on the machine (~2 ms); reading one process's RSS
# is one small /proc read. So the tree is found again only this often, or when one vanished.
TREE_REFRESH_SECONDS = 0.2


def process_tree(roots: list[int]) -> list[psutil.Process]:
    """Each root and all its descendants, as they are now."""
    tree: list[psutil.Process] = []
    for pid in roots:
        try:
            root = psutil.Process(pid)
            tree += [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
    return tree


def cpu_seconds(roots: list[int]) -> float:
    """User and system CPU seconds the trees' processes have used so far: a figure that, unlike
    wall time, a busy machine does not inflate much (contention adds cache misses, not CPU)."""
    total = 0.0
    for process in process_tree(roots):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


class RssSampler:
    """Samples the summed RSS of `roots()`'s process trees every `interval` seconds.
    `window()` starts a new measuring window and returns the peak of the one before; `overall`
    is the peak since `start()`."""

    def __init__(self, roots: Callable[[], list[int]], interval: float = 0.02) -> None:
        self.roots = roots
        self.interval = interval
        self.overall = 0
        self._peak = 0
        self._tree: list[psutil.Process] = []
        self._found_at = -TREE_REFRESH_SECONDS
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._sample_forever, name="rss", daemon=True)

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def sample(self) -> int:
        with self._lock:
            if time.monotonic() - self._found_at >= TREE_REFRESH_SECONDS:
                self._find_tree()
            rss = self._sum()
            if rss is None:  # a process ended (a worker replaced, say): look again
                self._find_tree()
                rss = self._sum() or 0
            self._peak = max(self._peak, rss)
            self.overall = max(self.overall, rss)
            return rss

    def _find_tree(self) -> None:
        self._tree = process_tree(self.roots())
        self._found_at = time.monotonic()

    def _sum(self) -> int | None:
        total = 0
        for process in self._tree:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                return None
        return total

    def window(self) -> int:
        """Take one sample now (so short windows are never empty), then start a new window."""
        self.sample()
        with self._lock:
            peak, self._peak = self._peak, 0
        return peak

    def _sample_forever(self) -> None:
        while not self._stopping.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
