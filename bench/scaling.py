"""`python -m bench scaling`: fanout with one worker process and with two, beside a
`multiprocessing.Pool` of one and of two processes (the floor), on the same work in one run.

Workloads: CPU ~1 ms an item (`sha256`, calibrated here as in `compare`) and no-op items.
Per round each configuration is started, runs each workload once and is stopped, so an idle
server never competes with the one being measured; rounds rotate the order. Printed: median
seconds, the speed-up from one worker to two (time with one / time with two), fanout's time
relative to the pool's with as many processes, and the CPU seconds each system's processes used
(on a shared machine the steadier figure: others' processes stretch wall time, not CPU).

Targets: CPU-bound, at least 1.8x from one worker to two, and within 1.05x of the pool; no-op,
a speed-up above 1 (throughput that grows with workers). The pool's own speed-up is the
machine's: on a shared machine it can be below 1.8x too, and it is printed beside fanout's.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.compare import calibrate_rounds
from bench.fanout_system import FanoutSystem
from bench.peers.multiprocessing_system import MultiprocessingSystem
from bench.rss import cpu_seconds
from bench.system import NOOP, BenchError, System, Workload
from bench.throughput import _interrupt

CPU_SPEEDUP, NOOP_SPEEDUP, FLOOR_RATIO = 1.8, 1.0, 1.05


@dataclass
class Cell:
    system: str
    workers: int
    workload: str
    items: int
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # CPU seconds of the system's processes

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)


def configurations(workers: tuple[int, ...]) -> list[tuple[str, int]]:
    return [(name, w) for w in workers for name in ("fanout", "multiprocessing")]


def make(name: str, workers: int) -> System:
    return FanoutSystem(workers) if name == "fanout" else MultiprocessingSystem(workers)


def measure(
    args: argparse.Namespace, progress: Console
) -> tuple[dict[tuple[str, int, str], Cell], int]:
    rounds = calibrate_rounds()
    workloads = [(Workload("CPU ~1 ms", "sha256", {"rounds": rounds}), args.cpu_items)]
    workloads.append((NOOP, args.noop_items))
    configs = configurations((1, 2))
    cells = {
        (name, w, load.name): Cell(name, w, load.name, items)
        for name, w in configs
        for load, items in workloads
    }
    for attempt in range(args.repeat):
        turn = configs[attempt % len(configs) :] + configs[: attempt % len(configs)]
        for name, w in turn:
            system = make(name, w)
            try:
                system.start()
                for load, items in workloads:
                    cell = cells[(name, w, load.name)]
                    cpu = cpu_seconds(system.root_pids())
                    run = system.run(items, time.monotonic() + args.cap, load)
                    cell.cpu.append(cpu_seconds(system.root_pids()) - cpu)
                    cell.seconds.append(run.seconds)
                    progress.print(
                        f"{name} x{w}, {load.name}, {items:,} items: {run.seconds:.3f} s,"
                        f" {cell.cpu[-1]:.2f} CPU s"
                    )
            finally:
                system.stop()
    return cells, rounds


def speedup(cells: dict[tuple[str, int, str], Cell], name: str, workload: str) -> float:
    return cells[(name, 1, workload)].median / cells[(name, 2, workload)].median


def table(cells: dict[tuple[str, int, str], Cell]) -> Table:
    out = Table(title="Scaling: one worker process and two")
    for column in ("workload", "system", "items", "1 worker s", "2 workers s", "speed-up"):
        out.add_column(column, justify="left" if column in ("workload", "system") else "right")
    out.add_column("vs pool (1 / 2)", justify="right")
    out.add_column("CPU s (1 / 2)", justify="right")
    for workload in dict.fromkeys(c.workload for c in cells.values()):
        for name in ("fanout", "multiprocessing"):
            one, two = cells[(name, 1, workload)], cells[(name, 2, workload)]
            pool = [cells[("multiprocessing", w, workload)].median for w in (1, 2)]
            versus = f"{one.median / pool[0]:.2f}x / {two.median / pool[1]:.2f}x"
            out.add_row(
                workload,
                name,
                f"{one.items:,}",
                f"{one.median:.3f}",
                f"{two.median:.3f}",
                f"{speedup(cells, name, workload):.2f}x",
                versus if name == "fanout" else "",
                f"{one.median_cpu:.2f} / {two.median_cpu:.2f}",
            )
    return out


def verdicts(cells: dict[tuple[str, int, str], Cell]) -> list[str]:
    cpu, noop = "CPU ~1 ms", NOOP.name
    fan, pool = speedup(cells, "fanout", cpu), speedup(cells, "multiprocessing", cpu)
    ratios = [
        cells[("fanout", w, cpu)].median / cells[("multiprocessing", w, cpu)].median for w in (1, 2)
    ]
    grows = speedup(cells, "fanout", noop)
    cpu_ratios = [
        cells[("fanout", w, cpu)].median_cpu / cells[("multiprocessing", w, cpu)].median_cpu
        for w in (1, 2)
    ]

    def met(ok: bool) -> str:
        return "met" if ok else "MISSED"

    return [
        f"CPU-bound: {fan:.2f}x from one worker to two (target >= {CPU_SPEEDUP}x:"
        f" {met(fan >= CPU_SPEEDUP)}); the pool's own: {pool:.2f}x",
        f"CPU-bound: {max(ratios):.2f}x the pool's time at worst (target <= {FLOOR_RATIO}x:"
        f" {met(max(ratios) <= FLOOR_RATIO)})",
        f"CPU-bound: {max(cpu_ratios):.2f}x the pool's CPU seconds at worst (the same target,"
        f" judged by CPU, which a busy machine hardly inflates:"
        f" {met(max(cpu_ratios) <= FLOOR_RATIO)})",
        f"no-op: {grows:.2f}x from one worker to two (target > 1: {met(grows > NOOP_SPEEDUP)})",
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cpu-items", type=int, default=5_000, help="CPU-bound items per run")
    # A million: at 100,000 a run takes ~0.2 s, most of it the submit and the finalize, which
    # no worker shares, so it times the job's fixed path rather than the workers' throughput.
    parser.add_argument("--noop-items", type=int, default=1_000_000, help="no-op items per run")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--cap", type=float, default=300.0, help="seconds one run may take")
    parser.add_argument("--json", action="store_true", help="write the figures as JSON to stdout")


def run(args: argparse.Namespace) -> int:
    progress = Console(stderr=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        cells, rounds = measure(args, progress)
    except BenchError as error:
        progress.print(f"[red]benchmark failed:[/] {error}")
        return 1
    except KeyboardInterrupt:
        return 130
    out = Console(stderr=args.json)
    out.print(table(cells))
    for line in verdicts(cells):
        out.print(line)
    if args.json:
        report: dict[str, Any] = {
            "benchmark": "scaling",
            "sha256_rounds": rounds,
            "results": [
                vars(c) | {"median_seconds": c.median, "median_cpu_seconds": c.median_cpu}
                for c in cells.values()
            ],
        }
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0
