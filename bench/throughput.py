"""`python -m bench throughput`: N no-op items per system, timed from submit to completion.

For each system, size and repeat: submit N items, wait for the completion signal (fanout: the
webhook), check every item succeeded, and note the seconds and the peak RSS of the system's
whole process tree over that run. With `--floor`, `multiprocessing.Pool.map` over the same items
runs too, as the floor. Prints a table, the issue's targets met or missed, and how the time grows
with N (linear: ten times the items, ten times the time); `--json` writes the figures to stdout.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.fanout_system import FanoutSystem
from bench.peers.multiprocessing_system import MultiprocessingSystem
from bench.rss import RssSampler, cpu_seconds
from bench.system import BenchError, System

MB = 1_000_000
DEPHASE_SECONDS = 0.1
# The issues' targets on a 2-core machine: (items, seconds POST to webhook, peak RSS).
TARGETS = {100_000: (2.0, 500 * MB), 1_000_000: (3.0, 300 * MB)}


@dataclass(frozen=True)
class Measurement:
    system: str
    items: int
    seconds: list[float]
    peak_rss_bytes: int
    milestones: list[dict[str, float]]
    cpu_seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def items_per_second(self) -> float:
        return self.items / self.median

    def milestone_medians(self) -> dict[str, float]:
        names = dict.fromkeys(name for run in self.milestones for name in run)
        return {
            name: statistics.median(run[name] for run in self.milestones if name in run)
            for name in names
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "repeats": len(self.seconds),
            "median_seconds": self.median,
            "min_seconds": min(self.seconds),
            "max_seconds": max(self.seconds),
            "items_per_second": self.items_per_second,
            "median_milestones": self.milestone_medians(),
            "median_cpu_seconds": statistics.median(self.cpu_seconds),
        }


def measure(
    system: System, sizes: Sequence[int], repeat: int, timeout: float, progress: Console
) -> tuple[list[Measurement], int]:
    """Start the system, run every size `repeat` times, stop it whatever happens. Returns the
    measurements and the peak RSS over the whole session (start-up included)."""
    sampler = RssSampler(system.root_pids)
    try:
        system.start()
        sampler.start()
        measurements = []
        for items in sizes:
            seconds, milestones, used, peak = [], [], [], 0
            for attempt in range(1, repeat + 1):
                # Not a synchronisation: a random gap, so a run does not start in step with the
                # previous one's completion and hence with a system's own polling (fanout's
                # notifier looks every 20 ms), which would round every run up alike.
                time.sleep(random.uniform(0.0, DEPHASE_SECONDS))
                sampler.window()
                cpu = cpu_seconds(system.root_pids())
                run = system.run(items, time.monotonic() + timeout)
                used.append(cpu_seconds(system.root_pids()) - cpu)
                peak = max(peak, sampler.window())
                seconds.append(run.seconds)
                milestones.append(run.milestones)
                progress.print(
                    f"{system.name}: {items:,} items, run {attempt}/{repeat}:"
                    f" {run.seconds:.3f} s, {items / run.seconds:,.0f} items/s"
                )
            measurements.append(Measurement(system.name, items, seconds, peak, milestones, used))
        return measurements, sampler.overall
    finally:
        sampler.stop()
        system.stop()


def table(measurements: Sequence[Measurement]) -> Table:
    out = Table(title="Throughput: no-op items from submit to completion")
    for column in ("system", "items", "runs", "items/s (median)", "median s", "min s", "max s"):
        out.add_column(column, justify="left" if column == "system" else "right")
    out.add_column("CPU s (median)", justify="right")
    out.add_column("peak RSS MB", justify="right")
    for m in measurements:
        out.add_row(
            m.system,
            f"{m.items:,}",
            str(len(m.seconds)),
            f"{m.items_per_second:,.0f}",
            f"{m.median:.3f}",
            f"{min(m.seconds):.3f}",
            f"{max(m.seconds):.3f}",
            f"{statistics.median(m.cpu_seconds):.2f}",
            f"{m.peak_rss_bytes / MB:,.0f}",
        )
    return out


def milestone_table(measurements: Sequence[Measurement]) -> Table | None:
    """Where the time went: each milestone's median, in seconds since the submit."""
    medians = [m.milestone_medians() for m in measurements]
    names = list(dict.fromkeys(name for found in medians for name in found))
    if not names:
        return None
    out = Table(title="Milestones: median seconds since the submit")
    out.add_column("system")
    out.add_column("items", justify="right")
    for name in names:
        out.add_column(name, justify="right")
    for m, found in zip(measurements, medians, strict=True):
        cells = [f"{found[name]:.3f}" if name in found else "" for name in names]
        out.add_row(m.system, f"{m.items:,}", *cells)
    return out


def verdicts(measurements: Sequence[Measurement]) -> list[str]:
    lines = []
    for m in measurements:
        if m.system != "fanout" or m.items not in TARGETS:
            continue
        seconds, rss = TARGETS[m.items]
        time_ok, rss_ok = m.median < seconds, m.peak_rss_bytes < rss
        lines.append(
            f"{m.system}: {m.items:,} items in {m.median:.3f} s (target < {seconds} s:"
            f" {'met' if time_ok else 'MISSED'}), peak RSS {m.peak_rss_bytes / MB:,.0f} MB"
            f" (target < {rss / MB:,.0f} MB: {'met' if rss_ok else 'MISSED'})"
        )
    return lines + growth(measurements)


def growth(measurements: Sequence[Measurement]) -> list[str]:
    """For each system, each size's time against the next smaller size's, scaled by the
    ratio of their items: 1.00 is linear, above it worse than linear."""
    lines = []
    for system in dict.fromkeys(m.system for m in measurements):
        sizes = sorted((m for m in measurements if m.system == system), key=lambda m: m.items)
        for smaller, larger in itertools.pairwise(sizes):
            ratio = (larger.median / smaller.median) / (larger.items / smaller.items)
            lines.append(
                f"{system}: {larger.items:,} items took {larger.median / smaller.median:.1f}x the"
                f" time of {smaller.items:,} ({ratio:.2f} of linear)"
            )
    return lines


def floor_ratios(measurements: Sequence[Measurement]) -> list[str]:
    """fanout's median beside the floor's at each size, in the same run."""
    floor = {m.items: m for m in measurements if m.system == "multiprocessing"}
    return [
        f"fanout: {m.items:,} items in {m.median:.3f} s, {m.median / floor[m.items].median:.1f}x"
        f" multiprocessing.Pool.map's {floor[m.items].median:.3f} s"
        for m in measurements
        if m.system == "fanout" and m.items in floor
    ]


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from error
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive integers")
    return sizes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes", type=_sizes, default=[10_000, 100_000], help="comma-separated item counts"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per size (default 3)")
    parser.add_argument(
        "--workers", type=int, default=None, help="fanout worker processes (default: CPUs)"
    )
    parser.add_argument(
        "--chunk-size", type=int, default=None, help="items per chunk (default: the server's)"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds one run may take (default 300)"
    )
    parser.add_argument(
        "--body",
        choices=("json", "ndjson"),
        default="json",
        help="submit the job as one JSON object (default) or its items as a streamed NDJSON body",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time multiprocessing.Pool.map over the same items (the floor)",
    )
    parser.add_argument("--json", action="store_true", help="write the figures as JSON to stdout")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM as Ctrl-C: unwind, so the server is stopped


def run(args: argparse.Namespace) -> int:
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    # With --json, stdout carries only the JSON; the table and progress go to stderr.
    out = Console(stderr=args.json)
    progress = Console(stderr=True)
    signal.signal(signal.SIGTERM, _interrupt)
    systems: list[System] = [FanoutSystem(args.workers, args.chunk_size, args.body)]
    if args.floor:
        systems.append(MultiprocessingSystem(args.workers or os.cpu_count() or 1))
    measurements: list[Measurement] = []
    overall: dict[str, int] = {}
    try:
        for system in systems:
            found, peak = measure(system, args.sizes, args.repeat, args.timeout, progress)
            measurements += found
            overall[system.name] = peak
    except BenchError as error:
        progress.print(f"[red]benchmark failed:[/] {error}")
        return 1
    except KeyboardInterrupt:
        progress.print("interrupted; the server was stopped")
        return 130
    out.print(table(measurements))
    phases = milestone_table(measurements)
    if phases is not None:
        out.print(phases)
    for line in verdicts(measurements) + floor_ratios(measurements):
        out.print(line)
    if args.json:
        report = {
            "benchmark": "throughput",
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "workers": args.workers,
            "chunk_size": args.chunk_size,
            "body": args.body,
            "results": [m.as_dict() for m in measurements],
            "session_peak_rss_bytes": overall,
        }
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0
