"""`python -m bench status`: `GET /jobs/{id}` on `fanout serve` beside a bare FastAPI route, under
the same load in the same run (`bench/http_load.py`: wrk, 50 connections, rounds alternating).

Prints requests/s, p50 and p99 of the median round, the server process's CPU per request, and the
ratio of fanout's requests/s to the bare route's (target: at least 70 %). With `--busy`, also the
same poll while another job runs on the workers (the store changing all the while), for context.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import http_load
from bench.fanout_system import FanoutSystem
from bench.system import BenchError
from bench.throughput import _interrupt

TARGET_RATIO = 0.70
FANOUT, BARE, BUSY = http_load.FANOUT, http_load.BARE, http_load.BUSY


def table(report: dict[str, Any]) -> Table:
    out = Table(title=f"Status reads: {report['load_generator']}, {report['seconds']:.0f} s rounds")
    for column in ("route", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "req/s vs bare"):
        out.add_column(column, justify="left" if column == "route" else "right")
    bare = report[BARE]["requests_per_second"]
    for name in (FANOUT, BUSY, BARE):
        if name not in report:
            continue
        load = report[name]
        out.add_row(
            name,
            f"{load['requests_per_second']:,.0f}",
            f"{load['p50_ms']:.2f}",
            f"{load['p99_ms']:.2f}",
            f"{load['cpu_us_per_request']:,.0f}",
            f"{load['requests_per_second'] / bare:.0%}",
        )
    return out


def verdict(report: dict[str, Any]) -> str:
    ratio = report["ratio"]
    met = "met" if ratio >= TARGET_RATIO else "MISSED"
    return f"GET /jobs/{{id}} at {ratio:.0%} of the bare route's req/s (target >= 70%: {met})"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per wrk round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per route (default 3)")
    parser.add_argument("--workers", type=int, default=None, help="fanout worker processes")
    parser.add_argument(
        "--busy",
        action="store_true",
        help="also poll while another job runs (its commits keep the store changing)",
    )
    parser.add_argument("--json", action="store_true", help="write the figures as JSON to stdout")


def run(args: argparse.Namespace) -> int:
    progress = Console(stderr=True)
    if http_load.missing():
        progress.print("wrk is not installed: scripts/install-bench-deps (see bench/README.md)")
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    fanout = FanoutSystem(args.workers)
    try:
        fanout.start()
        report = http_load.measure(fanout, args.seconds, args.rounds, args.busy)
    except BenchError as error:
        progress.print(f"[red]benchmark failed:[/] {error}")
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        fanout.stop()
    report["ratio"] = report[FANOUT]["requests_per_second"] / report[BARE]["requests_per_second"]
    out = Console(stderr=args.json)
    out.print(table(report))
    out.print(verdict(report))
    if args.json:
        sys.stdout.write(json.dumps({"benchmark": "status", **report}, indent=2) + "\n")
    return 0
