"""`python -m bench soak`: the data directory under a steady load, with retention and without.

Two `fanout serve`s in turn, each for `--seconds`: one with a short FANOUT_RETENTION_DAYS (its
ended jobs are purged and the file's space given back), one keeping every job (retention 0),
the floor it is measured against. The same client load on each: `--rate` jobs a second, each
of `--items` no-op items of ~100 bytes with a webhook to a local receiver. The data directory's
size (the SQLite file, its log and index) is sampled every second.

Printed per run: jobs accepted and webhooks received, the size at the end of the first half and
at the end, and the growth over the second half (MB per minute). With retention the size must
level off once jobs start to expire: target, the second half grows by at most 5 % of the first
half's size, while the run keeping everything grows all along.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.fanout_system import FanoutSystem
from bench.system import BenchError
from bench.throughput import MB, _interrupt

TARGET_GROWTH = 0.05


@dataclass
class Soak:
    name: str
    retention_seconds: float
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds in, bytes)
    accepted: int = 0
    webhooks: int = 0

    def size_at(self, fraction: float) -> int:
        end = self.samples[-1][0] * fraction
        return [size for at, size in self.samples if at <= end][-1]

    @property
    def second_half_growth(self) -> float:
        """Bytes added over the second half, relative to the size at its start."""
        middle = self.size_at(0.5)
        return (self.samples[-1][1] - middle) / max(1, middle)

    def mb_per_minute(self) -> float:
        span = self.samples[-1][0] - self.samples[-1][0] / 2
        return (self.samples[-1][1] - self.size_at(0.5)) / MB / span * 60


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def soak(soaked: Soak, args: argparse.Namespace, progress: Console) -> Soak:
    days = f"{soaked.retention_seconds / 86400:.10f}"
    env = {"FANOUT_RETENTION_DAYS": days, "FANOUT_PURGE_INTERVAL": "1"}
    system = FanoutSystem(args.workers, env=env)
    item = "x" * 90
    try:
        system.start()
        assert system.client is not None and system.receiver is not None
        data = system.data_dir / "data" if system.data_dir else Path()
        hook = {"url": system.receiver.url}
        payload = json.dumps({"task": "echo", "items": [item] * args.items, "webhook": hook})
        headers = {"content-type": "application/json"}
        started = time.monotonic()
        next_post = next_sample = started
        while (now := time.monotonic()) < started + args.seconds:
            if now >= next_sample:
                soaked.samples.append((now - started, directory_bytes(data)))
                next_sample += 1.0
            if now >= next_post:
                response = system.client.post("/jobs", content=payload.encode(), headers=headers)
                if response.status_code != 202:
                    raise BenchError(f"POST /jobs answered {response.status_code}")
                soaked.accepted += 1
                next_post += 1.0 / args.rate
            # Pacing the load, not waiting for the server: the next post or sample is due then.
            time.sleep(max(0.0, min(next_post, next_sample) - time.monotonic()))
        soaked.samples.append((time.monotonic() - started, directory_bytes(data)))
        soaked.webhooks = system.receiver.received()
        progress.print(
            f"{soaked.name}: {soaked.accepted} jobs, {soaked.samples[-1][1] / MB:.1f} MB at the end"
        )
        return soaked
    finally:
        system.stop()


def table(runs: list[Soak]) -> Table:
    out = Table(title="Soak: the data directory under a steady load")
    columns = ("run", "jobs", "webhooks", "MB at half", "MB at end", "2nd half MB/min", "growth")
    for column in columns:
        out.add_column(column, justify="left" if column == "run" else "right")
    for run in runs:
        out.add_row(
            run.name,
            f"{run.accepted:,}",
            f"{run.webhooks:,}",
            f"{run.size_at(0.5) / MB:,.1f}",
            f"{run.samples[-1][1] / MB:,.1f}",
            f"{run.mb_per_minute():,.2f}",
            f"{run.second_half_growth:+.0%}",
        )
    return out


def verdict(runs: list[Soak]) -> str:
    kept, purged = runs[1], runs[0]
    met = purged.second_half_growth <= TARGET_GROWTH
    return (
        f"with retention the second half grew {purged.second_half_growth:+.1%} (target <= +5%:"
        f" {'met' if met else 'MISSED'}); keeping every job, {kept.second_half_growth:+.1%}"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=120.0, help="seconds per run")
    parser.add_argument("--rate", type=float, default=20.0, help="jobs submitted per second")
    parser.add_argument("--items", type=int, default=100, help="items per job")
    parser.add_argument("--retention", type=float, default=20.0, help="retention, seconds")
    parser.add_argument("--workers", type=int, default=None, help="worker processes")
    parser.add_argument("--json", action="store_true", help="write the figures as JSON to stdout")


def run(args: argparse.Namespace) -> int:
    progress = Console(stderr=True)
    signal.signal(signal.SIGTERM, _interrupt)
    runs = [Soak("retention", args.retention), Soak("keep every job", 0.0)]
    try:
        for each in runs:
            soak(each, args, progress)
    except BenchError as error:
        progress.print(f"[red]benchmark failed:[/] {error}")
        return 1
    except KeyboardInterrupt:
        return 130
    out = Console(stderr=args.json)
    out.print(table(runs))
    out.print(verdict(runs))
    if args.json:
        report = {"benchmark": "soak", "arguments": vars(args), "runs": [asdict(r) for r in runs]}
        sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
    return 0
