"""What a benchmarked system offers: start it, run N no-op items through it, stop it.

fanout is one system; a peer (Celery chords, a multiprocessing pool) is another class with the
same three methods, so `throughput` can measure them side by side in one run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class BenchError(Exception):
    """A system did not start, or a run did not finish correctly."""


@dataclass(frozen=True)
class Run:
    """One timed run: `seconds` from just before the submit to the completion signal.
    `milestones` are what the system can tell of where the time went, in seconds since the
    submit (fanout: accepted, first chunk started, job finished, webhook received)."""

    items: int
    seconds: float
    succeeded: int
    failed: int
    milestones: dict[str, float] = field(default_factory=dict)


class System(Protocol):
    name: str

    def start(self) -> None:
        """Start every process the system needs; return once it accepts work."""

    def root_pids(self) -> list[int]:
        """The processes whose trees (with every descendant) count towards peak RSS."""

    def run(self, items: int, deadline: float) -> Run:
        """Submit `items` no-op items, wait for completion until `deadline` (time.monotonic()),
        and check every item succeeded. Raises BenchError otherwise."""

    def stop(self) -> None:
        """Stop everything `start` started; safe to call more than once, or after a failed
        start."""
