"""`python -m bench compare`: fanout beside Celery and multiprocessing, in one run.

Per size N, per workload (no-op; I/O: 50 ms sleeps; CPU: sha256 iterated to ~1 ms), `--repeat`
rounds; in each round every system runs once, the order rotating round by round. Then the HTTP
side (wrk on GET /jobs/{id} beside a bare route) and the handler's cold-start import time.
Writes bench/results/<date>-compare.{json,md,png}. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import coldstart, http_load, plot
from bench.fanout_system import FanoutSystem
from bench.peers import celery_system, work
from bench.peers.celery_system import CeleryCluster, CelerySystem
from bench.peers.multiprocessing_system import MultiprocessingSystem
from bench.rss import RssSampler
from bench.system import IO_SECONDS, NOOP, BenchError, RunTimedOut, System, Workload
from bench.throughput import DEPHASE_SECONDS, MB, _interrupt, _sizes
from fanout.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"


def calibrate_rounds(target: float = 0.001) -> int:
    """sha256 rounds that take `target` seconds here: the best of 5 timings of 2,000 rounds."""
    probe = 2000
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        work.sha256("0", probe)
        best = min(best, time.perf_counter() - started)
    return max(1, round(probe * target / best))


@dataclass
class Contender:
    system: System
    workloads: set[str]
    configuration: dict[str, str] = field(default_factory=dict)


@dataclass
class Result:
    system: str
    workload: str
    items: int
    configuration: str = ""
    seconds: list[float] = field(default_factory=list)
    capped_runs: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    peak_rss_bytes: int = 0
    milestones: list[dict[str, float]] = field(default_factory=list)
    not_run: str | None = None

    @property
    def closed(self) -> bool:
        """No more runs of this configuration at this size: it failed, or ran past the cap."""
        return bool(self.not_run or self.errors or self.capped_runs)

    @property
    def median(self) -> float | None:
        # A configuration past the cap has no median: its time is only known to exceed the cap.
        if self.capped_runs or not self.seconds:
            return None
        return statistics.median(self.seconds)

    def as_dict(self, fanout: Result | None) -> dict[str, Any]:
        median = self.median
        ratio = None
        if median is not None and fanout is not None and fanout.median is not None:
            ratio = median / fanout.median
        return {
            "system": self.system,
            "workload": self.workload,
            "items": self.items,
            "configuration": self.configuration,
            "runs": len(self.seconds) + self.capped_runs,
            "seconds": self.seconds,
            "capped_runs": self.capped_runs,
            "median_seconds": median,
            "min_seconds": min(self.seconds) if self.seconds and median is not None else None,
            "max_seconds": max(self.seconds) if self.seconds and median is not None else None,
            "items_per_second": None if median is None else self.items / median,
            "time_vs_fanout": ratio,
            "peak_rss_bytes": self.peak_rss_bytes,
            "errors": self.errors,
            "notes": sorted(set(self.notes)),
            "not_run": self.not_run,
            "milestones": self.milestones,
        }


def run_once(
    contender: Contender, workload: Workload, items: int, cap: float, result: Result
) -> str:
    system = contender.system
    sampler = RssSampler(system.root_pids)
    sampler.start()
    started = time.perf_counter()
    try:
        run = system.run(items, time.monotonic() + cap, workload)
    except RunTimedOut:
        result.capped_runs += 1
        return f"past the {cap:.0f} s cap ({time.perf_counter() - started:.1f} s)"
    except BenchError as error:
        result.errors.append(str(error))
        return f"[red]failed:[/] {error}"
    finally:
        result.peak_rss_bytes = max(result.peak_rss_bytes, sampler.window())
        sampler.stop()
    result.seconds.append(run.seconds)
    result.milestones.append(run.milestones)
    result.notes += run.notes
    return f"{run.seconds:.3f} s, {items / run.seconds:,.0f} items/s {' '.join(run.notes)}"


def measure(
    contenders: Sequence[Contender],
    workloads: Sequence[Workload],
    sizes: Sequence[int],
    repeat: int,
    cap: float,
    progress: Console,
) -> list[Result]:
    """Every size, workload and round; the systems' order rotates each round. A configuration
    past the cap at one size is not run at larger sizes, and says so."""
    results: list[Result] = []
    closed_above: dict[tuple[str, str], str] = {}
    for items in sizes:
        for workload in workloads:
            mine = [c for c in contenders if workload.name in c.workloads]
            found = {
                c.system.name: Result(
                    c.system.name,
                    workload.name,
                    items,
                    c.configuration.get(workload.name, ""),
                    not_run=closed_above.get((c.system.name, workload.name)),
                )
                for c in mine
            }
            results += found.values()
            for attempt in range(repeat):
                shift = attempt % max(1, len(mine))
                for contender in mine[shift:] + mine[:shift]:
                    result = found[contender.system.name]
                    if result.closed:
                        continue
                    # Not a synchronisation: a random gap, so that no run starts in step with
                    # a system's own polling (see throughput.py).
                    time.sleep(random.uniform(0.0, DEPHASE_SECONDS))
                    said = run_once(contender, workload, items, cap, result)
                    progress.print(
                        f"{workload.name}, N={items:,}, {result.system}, run {attempt + 1}: {said}"
                    )
            for name, result in found.items():
                if result.capped_runs:
                    closed_above[(name, workload.name)] = (
                        f"not run: past the {cap:.0f} s cap at N={items:,}"
                    )
    return results


def markdown(rows: list[dict[str, Any]]) -> str:
    head = "| workload | N | system | runs | median s | min s | max s | items/s | time vs fanout"
    head += " | peak RSS MB | notes |\n|" + "---|" * 11 + "\n"
    lines = []
    for r in rows:
        if r["median_seconds"] is None:
            if r["not_run"]:
                status = r["not_run"]
            elif r["errors"]:
                status = "failed: " + r["errors"][0][:120]
            else:
                status = f"{r['capped_runs']} run(s) past the cap"
            figures = ["—"] * 5
        else:
            status = ""
            figures = [
                f"{r['median_seconds']:.3f}",
                f"{r['min_seconds']:.3f}",
                f"{r['max_seconds']:.3f}",
                f"{r['items_per_second']:,.0f}",
                "" if r["time_vs_fanout"] is None else f"{r['time_vs_fanout']:.2f}x",
            ]
        notes = "; ".join(n for n in [r["configuration"], status, *r["notes"]] if n)
        rss = f"{r['peak_rss_bytes'] / MB:,.0f}" if r["peak_rss_bytes"] else "—"
        cells = [r["workload"], f"{r['items']:,}", r["system"], str(r["runs"]), *figures, rss]
        lines.append("| " + " | ".join([*cells, notes]) + " |")
    return head + "\n".join(lines) + "\n"


def _row(rows: list[dict[str, Any]], system: str, workload: str, items: int) -> dict[str, Any]:
    for r in rows:
        if (r["system"], r["workload"], r["items"]) == (system, workload, items):
            return r
    return {}


def _slower(rows: list[dict[str, Any]], system: str, items: int, cap: float) -> float | None:
    """How many times fanout's median `system` took at `items` no-op items; past the cap, the
    lower bound cap / fanout's median."""
    mine, fanout = _row(rows, system, NOOP.name, items), _row(rows, "fanout", NOOP.name, items)
    if not mine or not fanout or fanout.get("median_seconds") is None:
        return None
    if mine["median_seconds"] is not None:
        return float(mine["median_seconds"] / fanout["median_seconds"])
    return cap / fanout["median_seconds"] if mine["capped_runs"] else None


def targets(
    rows: list[dict[str, Any]], io: Workload, concurrency: int, cap: float, extra: dict[str, Any]
) -> list[str]:
    """The issue's targets that this run's figures can decide: met or missed, and by how much."""
    out: list[str] = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    chunks = _slower(rows, "celery-chunks", 100_000, cap)
    if chunks is not None:
        capped = _row(rows, "celery-chunks", NOOP.name, 100_000)["capped_runs"]
        bound = "at least " if capped else ""
        out.append(
            f"no-op N=100,000: Celery chunked took {bound}{chunks:.2f}x fanout's time"
            f" (target ≥ 5x): {verdict(chunks >= 5)}"
        )
    floor = _slower(rows, "multiprocessing", 100_000, cap)
    if floor is not None:
        out.append(
            f"no-op N=100,000: fanout took {1 / floor:.2f}x multiprocessing's time"
            f" (target ≤ 10x): {verdict(1 / floor <= 10)}"
        )
    fanout_io = _row(rows, "fanout", io.name, 10_000)
    if fanout_io:
        ideal = 10_000 * IO_SECONDS / concurrency
        median = fanout_io["median_seconds"]
        ratio = float("inf") if median is None else median / ideal
        out.append(
            f"I/O N=10,000: fanout {ratio:.2f}x the ideal {ideal:.2f} s"
            f" (N x 50 ms / concurrency {concurrency}; target ≤ 2x): {verdict(ratio <= 2)}"
        )
    http = extra.get("http")
    if http and "GET /jobs/{id}" in http:
        share = (
            http["GET /jobs/{id}"]["requests_per_second"]
            / (http["bare FastAPI route"]["requests_per_second"])
        )
        out.append(
            f"GET /jobs/{{id}}: {share:.0%} of the bare route's requests/s (target ≥ 50%):"
            f" {verdict(share >= 0.5)}"
        )
    cold = extra.get("coldstart")
    if cold and "ratio" in cold:
        out.append(
            f"import {cold['module']}: {cold['ratio']:.2f}x the bare imports (target ≤ 1.1x):"
            f" {verdict(cold['ratio'] <= 1.1)}"
        )
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes", type=_sizes, default=[1_000, 10_000, 100_000], help="comma-separated N"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration (3)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="(CPUs)")
    parser.add_argument("--cap", type=float, default=300.0, help="seconds one run may take")
    parser.add_argument(
        "--workloads", default="no-op,io,cpu", help="comma-separated: no-op, io, cpu"
    )
    parser.add_argument("--http-seconds", type=float, default=10.0, help="per wrk round (10)")
    parser.add_argument("--http-rounds", type=int, default=3, help="wrk rounds per server (3)")
    parser.add_argument("--import-runs", type=int, default=10, help="fresh interpreters (10)")
    parser.add_argument(
        "--skip-missing",
        action="store_true",
        help="run without what is not installed (Celery, wrk), saying so, instead of stopping",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")


def _workloads(names: str, rounds: int) -> list[Workload]:
    known = {
        "no-op": NOOP,
        "io": Workload("I/O 50 ms", "sleep"),
        "cpu": Workload("CPU ~1 ms", "sha256", {"rounds": rounds}),
    }
    chosen = [part.strip() for part in names.split(",") if part.strip()]
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise SystemExit(f"unknown workloads {unknown}; choose from {sorted(known)}")
    return [known[name] for name in chosen]


def run(args: argparse.Namespace) -> int:
    out, progress = Console(), Console(stderr=True)
    missing = {
        "celery": celery_system.missing(),
        "wrk": http_load.missing(),
        "plot": plot.missing(),
    }
    hints = {
        "celery": celery_system.INSTALL_HINT,
        "wrk": "run scripts/install-bench-deps (apt-get install wrk)",
        "plot": "pip install -e '.[bench]'",
    }
    for what, names in missing.items():
        if names:
            progress.print(f"[yellow]missing {', '.join(names)}:[/] {hints[what]}")
    if any(missing.values()) and not args.skip_missing:
        progress.print("not running; install them, or pass --skip-missing to run without")
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    rounds = calibrate_rounds()
    workloads = _workloads(args.workloads, rounds)
    io = _workloads("io", rounds)[0]
    async_concurrency = Settings().async_concurrency
    fanout = FanoutSystem(args.workers)
    contenders = [
        Contender(fanout, {w.name for w in workloads}),
        Contender(MultiprocessingSystem(args.workers), {NOOP.name, "CPU ~1 ms"}),
    ]
    cluster = CeleryCluster(args.workers, async_concurrency)
    if not missing["celery"]:
        pools = {w.name: cluster.pool_description(CelerySystem.pool_for(w)) for w in workloads}
        for chunked in (False, True):
            system = CelerySystem(cluster, chunked)
            contenders.insert(1 + chunked, Contender(system, set(pools), dict(pools)))
    contenders[0].configuration[io.name] = (
        f"{args.workers} workers x FANOUT_ASYNC_CONCURRENCY {async_concurrency}"
    )
    results: list[Result] = []
    extra: dict[str, Any] = {}
    interrupted = False
    started = time.monotonic()
    try:
        for contender in contenders:
            contender.system.start()
        results = measure(contenders, workloads, args.sizes, args.repeat, args.cap, progress)
        if not missing["wrk"]:
            progress.print("HTTP: wrk against GET /jobs/{id} and a bare route")
            extra["http"] = http_load.measure(fanout, args.http_seconds, args.http_rounds)
        progress.print(f"cold start: {args.import_runs} fresh interpreters each")
        extra["coldstart"] = coldstart.measure(args.import_runs)
    except KeyboardInterrupt:
        interrupted = True
        progress.print("interrupted; stopping every system")
    finally:
        for contender in contenders:
            contender.system.stop()
    fanouts = {(r.workload, r.items): r for r in results if r.system == "fanout"}
    rows = [r.as_dict(fanouts.get((r.workload, r.items))) for r in results]
    verdicts = targets(rows, io, args.workers * async_concurrency, args.cap, extra)
    report = {
        "benchmark": "compare",
        "date": date.today().isoformat(),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "interrupted": interrupted,
        "minutes": (time.monotonic() - started) / 60,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "workers": args.workers,
        "cap_seconds": args.cap,
        "sha256_rounds": rounds,
        "fanout_io_concurrency": args.workers * async_concurrency,
        "missing": missing,
        "results": rows,
        **extra,
        "targets": verdicts,
    }
    write(report, rows, args.out, args.cap, out, draw=not missing["plot"])
    return 130 if interrupted else 0


def extra_markdown(report: dict[str, Any]) -> str:
    text = ""
    http = report.get("http")
    if http:
        text += f"\n### HTTP ({http['load_generator']}, {http['seconds']:.0f} s per round)\n\n"
        text += "| route | requests/s | p50 ms | p99 ms |\n|---|---|---|---|\n"
        for name in ("GET /jobs/{id}", "bare FastAPI route"):
            load = http[name]
            text += f"| {name} | {load['requests_per_second']:,.0f} | {load['p50_ms']:.2f}"
            text += f" | {load['p99_ms']:.2f} |\n"
    cold = report.get("coldstart")
    if cold:
        text += f"\n### Cold-start import (median of {cold['runs']} fresh interpreters)\n\n"
        if cold["note"]:
            text += f"{cold['note']}.\n\n"
        text += "| import | import s | whole process s |\n|---|---|---|\n"
        for key in ("handler", "bare", "queue", "queue_floor"):
            part = cold[key]
            text += f"| `import {part['imports']}` | {part['median_import_seconds']:.3f}"
            text += f" | {part['median_process_seconds']:.3f} |\n"
    if report["targets"]:
        text += "\n### Targets\n\n" + "".join(f"- {line}\n" for line in report["targets"])
    return text


def write(
    report: dict[str, Any],
    rows: list[dict[str, Any]],
    directory: Path,
    cap: float,
    out: Console,
    draw: bool = True,
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"{report['date']}-compare"
    header = (
        f"## fanout vs Celery vs multiprocessing, {report['date']}\n\n"
        f"`{report['command']}` on {report['machine']['cpus']} CPUs,"
        f" Python {report['machine']['python']}; {report['workers']} workers each;"
        f" cap {cap:.0f} s per run; CPU items are sha256 x {report['sha256_rounds']} rounds.\n\n"
    )
    table = header + markdown(rows) + extra_markdown(report)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(table)
    if rows and draw:
        plot.draw(rows, cap, stem.with_suffix(".png"), f"items/s, {report['date']}")
    sys.stdout.write(table)
    out.print(f"wrote {stem}.json, .md, .png")
