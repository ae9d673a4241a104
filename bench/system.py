"""What a benchmarked system offers: start it, run N items of a workload through it, stop it.

fanout is one system; a peer (Celery chords, a multiprocessing pool) is another class with the
same methods, so `throughput` and `compare` can measure them side by side in one run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class BenchError(Exception):
    """A system did not start, or a run did not finish correctly."""


class RunTimedOut(BenchError):
    """A run did not complete before its deadline. The system has been brought back to idle
    (the unfinished work cancelled or thrown away), so the next run starts clean."""


@dataclass(frozen=True)
class Workload:
    """What every item does, the same on every system. `task` is fanout's built-in task and the
    name of the peers' function (bench.peers.work); `item(i)` is the i-th item; `params` is the
    job's params, passed to the peers' function as keyword arguments."""

    name: str
    task: str
    params: dict[str, Any] = field(default_factory=dict)

    def item(self, index: int) -> Any:
        if self.task == "sleep":
            return IO_SECONDS
        if self.task == "sha256":
            return str(index)
        return index

    def items(self, count: int) -> list[Any]:
        return [self.item(i) for i in range(count)]


IO_SECONDS = 0.05
NOOP = Workload("no-op", "echo")


@dataclass(frozen=True)
class Run:
    """One timed run: `seconds` from just before the submit to the completion signal.
    `milestones` are what the system can tell of where the time went, in seconds since the
    submit (fanout: accepted, first chunk started, job finished, webhook received). `notes` are
    what a run found on the way that the figures do not show (a hung `AsyncResult.get()`)."""

    items: int
    seconds: float
    succeeded: int
    failed: int
    milestones: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


class System(Protocol):
    name: str

    def start(self) -> None:
        """Start every process the system needs; return once it accepts work."""

    def root_pids(self) -> list[int]:
        """The processes whose trees (with every descendant) count towards peak RSS."""

    def run(self, items: int, deadline: float, workload: Workload = NOOP) -> Run:
        """Submit `items` items of `workload` (no-op by default), wait for completion until
        `deadline` (time.monotonic()), and check every item succeeded. Raises RunTimedOut past
        the deadline, BenchError if the run went wrong otherwise."""

    def stop(self) -> None:
        """Stop everything `start` started; safe to call more than once, or after a failed
        start."""
