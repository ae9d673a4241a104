"""`python -m bench cost`: AWS requests and dollars per million items, measured on moto, and
the bill all in.

Runs one job of N no-op items (`echo` of a string of `--result-bytes` characters) through the
whole AWS pipeline on a private emulator, as Lambda would run it (`bench/cost_pipeline.py`),
counts every AWS request by service and operation and the DynamoDB capacity it consumes
(`bench/cost_meter.py`), prices them with `fanout.pricing`, and prints them per item and per
million items beside Step Functions and the seed's estimate (`bench/cost_peers.py`); then the
rest of the bill (`bench/cost_allin.py`): Lambda GB-s and INIT, storage for the retention, logs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import cost_allin, cost_peers, cost_pipeline
from bench.cost_meter import Meter
from bench.cost_pipeline import STREAM_SOURCE, JobSpec, Ran
from fanout import pricing

# Targets for no-op items with ~100-byte results (issue 12): requests only, and all in.
TARGET_PER_MILLION = 0.01
TARGET_ALL_IN_PER_MILLION = 0.03
MILLION = 1_000_000


@dataclass
class Line:
    """One (service, operation) of the bill."""

    service: str
    operation: str
    requests: int = 0
    read_units: float = 0.0
    write_units: float = 0.0
    dollars: float = 0.0
    phases: dict[str, int] = field(default_factory=dict)
    note: str = ""


def price_line(phase: str, service: str, operation: str, count: int, meter: Meter) -> float:
    if service == "dynamodbstreams" and phase == STREAM_SOURCE:
        return 0.0  # a Lambda trigger's stream reads are free
    if service == "dynamodb":
        return pricing.price(
            {}, meter.capacity.get((phase, service, operation), pricing.Capacity())
        ).total
    return count * pricing.request_price(service, operation)


def bill(meter: Meter) -> tuple[list[Line], dict[str, float], float]:
    """The lines by (service, operation), dollars by phase, and the total (by `pricing.price`)."""
    lines: dict[tuple[str, str], Line] = {}
    by_phase: dict[str, float] = defaultdict(float)
    priced: dict[tuple[str, str], int] = defaultdict(int)
    capacity = pricing.Capacity()
    for (phase, service, operation), count in sorted(meter.requests.items()):
        line = lines.setdefault((service, operation), Line(service, operation))
        line.requests += count
        line.phases[phase] = line.phases.get(phase, 0) + count
        used = meter.capacity.get((phase, service, operation), pricing.Capacity())
        line.read_units += used.read_units
        line.write_units += used.write_units
        dollars = price_line(phase, service, operation, count, meter)
        line.dollars += dollars
        by_phase[phase] += dollars
        if service == "dynamodbstreams" and phase == STREAM_SOURCE:
            line.note = "free: read by a Lambda trigger"
        else:
            priced[service, operation] += count
        capacity += used
    total = pricing.price(priced, capacity).total
    return sorted(lines.values(), key=lambda line: -line.dollars), dict(by_phase), total


def report(spec: JobSpec, ran: Ran, meter: Meter, extra: cost_allin.AllIn) -> dict[str, Any]:
    lines, by_phase, total = bill(meter)
    scale = MILLION / spec.items
    by_service: dict[str, float] = defaultdict(float)
    for line in lines:
        by_service[line.service] += line.dollars * scale
    per_million = total * scale
    return {
        "benchmark": "cost",
        "prices_as_of": pricing.PRICES_AS_OF.isoformat(),
        "region": pricing.REGION,
        "job": {**asdict(spec), **asdict(ran)},
        "lines": [
            {
                **asdict(line),
                "requests_per_item": line.requests / spec.items,
                "read_units_per_item": line.read_units / spec.items,
                "write_units_per_item": line.write_units / spec.items,
                "dollars_per_million_items": line.dollars * scale,
            }
            for line in lines
        ],
        "capacity_source": "computed from item sizes (moto reports fixed figures)",
        "idle_receives_not_counted": meter.idle_polls,
        "per_million_by_service": dict(by_service),
        "per_million_by_phase": {phase: d * scale for phase, d in by_phase.items()},
        "per_million_items": per_million,
        "target_per_million": TARGET_PER_MILLION,
        "target_met": per_million <= TARGET_PER_MILLION,
        "all_in": all_in_figures(per_million, scale, extra),
        "peers": [asdict(peer) for peer in cost_peers.peers(ran.chunk_size)],
    }


def all_in_figures(requests: float, scale: float, extra: cost_allin.AllIn) -> dict[str, Any]:
    cold = requests + extra.total(cold=True) * scale
    warm = requests + extra.total(cold=False) * scale
    return {
        "lines_per_million": {"requests (above)": requests}
        | {what: dollars * scale for what, dollars in extra.lines.items()},
        "init_seconds": extra.init_seconds,
        "cold_containers": extra.containers,
        "stored_bytes_by_prefix": extra.stored_bytes,
        "retention_days": cost_allin.RETENTION_DAYS,
        "memory_gb": cost_allin.MEMORY_GB,
        "per_million_cold": cold,
        "per_million_warm": warm,
        "target_per_million": TARGET_ALL_IN_PER_MILLION,
        "target_met": cold <= TARGET_ALL_IN_PER_MILLION,
    }


def money(dollars: float) -> str:
    return f"${dollars:.4f}" if dollars < 10 else f"${dollars:,.2f}"


def print_report(figures: dict[str, Any], out: Console) -> None:
    job = figures["job"]
    out.print(
        f"[bold]fanout on AWS (moto), {job['items']:,} items[/] of echo with"
        f" ~{job['result_bytes']}-byte results: chunk size {job['chunk_size']}"
        f" ({job['chunks']:,} chunks), window"
        f" {job['window']}; job {job['status']}, {job['succeeded']:,} succeeded, webhook"
        f" {'received' if job['webhook_received'] else 'NOT received'}, {job['seconds']:.1f} s"
    )
    table = Table(
        title="requests per item and $ per million items"
        f" (list prices of {figures['prices_as_of']}, {figures['region']})"
    )
    for name in (
        "service",
        "operation",
        "requests/item",
        "RRU/item",
        "WRU/item",
        "$/M items",
        "made by",
    ):
        table.add_column(
            name, justify="left" if name in ("service", "operation", "made by") else "right"
        )
    for line in figures["lines"]:
        phases = ", ".join(f"{p} {n:,}" for p, n in sorted(line["phases"].items()))
        table.add_row(
            line["service"],
            line["operation"],
            f"{line['requests_per_item']:.5f}",
            f"{line['read_units_per_item']:.4f}" if line["read_units"] else "",
            f"{line['write_units_per_item']:.4f}" if line["write_units"] else "",
            money(line["dollars_per_million_items"]) + (" (free)" if line["note"] else ""),
            phases,
        )
    out.print(table)
    summary = Table(title="$ per million items")
    summary.add_column("what")
    summary.add_column("$/M items", justify="right")
    for service, dollars in sorted(figures["per_million_by_service"].items(), key=lambda x: -x[1]):
        summary.add_row(f"fanout: {service}", money(dollars))
    for phase, dollars in sorted(figures["per_million_by_phase"].items(), key=lambda x: -x[1]):
        summary.add_row(f"fanout, made by: {phase}", money(dollars))
    summary.add_row("[bold]fanout total[/]", f"[bold]{money(figures['per_million_items'])}[/]")
    for peer in figures["peers"]:
        summary.add_row(f"{peer['name']} ({peer['how']})", money(peer["per_million"]))
    out.print(summary)
    print_all_in(figures["all_in"], out)
    verdict = "[green]met[/]" if figures["target_met"] else "[red]missed[/]"
    out.print(
        f"target <= ${figures['target_per_million']:.2f} per million no-op items, requests"
        f" only: {verdict}"
        f" ({money(figures['per_million_items'])}). DynamoDB capacity {figures['capacity_source']};"
        f" {figures['idle_receives_not_counted']} empty ReceiveMessage polls left out (Lambda's"
        " pollers make them whatever the load: a standing cost, not per item)."
    )


def print_all_in(all_in: dict[str, Any], out: Console) -> None:
    table = Table(
        title=f"all in, $ per million items ({all_in['retention_days']} days' retention,"
        f" {all_in['memory_gb'] * 1024:.0f} MB functions; INIT for an idle deployment)"
    )
    table.add_column("what")
    table.add_column("$/M items", justify="right")
    for what, dollars in all_in["lines_per_million"].items():
        table.add_row(what, money(dollars))
    table.add_row(
        "[bold]all in, cold (every container starts for this job)[/]",
        f"[bold]{money(all_in['per_million_cold'])}[/]",
    )
    table.add_row("all in, warm (containers reused: no INIT)", money(all_in["per_million_warm"]))
    out.print(table)
    inits = ", ".join(f"{f} {s * 1000:.0f} ms" for f, s in all_in["init_seconds"].items())
    verdict = "[green]met[/]" if all_in["target_met"] else "[red]missed[/]"
    out.print(
        f"INIT measured (fresh interpreter importing the handler): {inits}; containers started:"
        f" {all_in['cold_containers']}. Target <= ${all_in['target_per_million']:.2f} per million"
        f" all in (cold): {verdict}."
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--items", type=int, default=10_000, help="items in the job")
    parser.add_argument(
        "--chunk-size", type=int, default=None, help="items per chunk (default: the server's)"
    )
    parser.add_argument(
        "--result-bytes", type=int, default=100, help="size of each item and its echoed result"
    )
    parser.add_argument(
        "--window", type=int, default=10, help="the job's max_concurrency (chunks in flight)"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds the job may take")
    parser.add_argument(
        "--no-warm-up",
        dest="warm_up",
        action="store_false",
        help="no uncounted job first: the job is its task's first, sized without measurements",
    )
    parser.add_argument("--json", action="store_true", help="write the figures as JSON to stdout")


def run(args: argparse.Namespace) -> int:
    out = Console(stderr=args.json)
    out.width = max(out.width, 150)  # the table's columns, unwrapped
    spec = JobSpec(
        args.items, args.chunk_size, args.result_bytes, args.window, args.timeout, args.warm_up
    )
    meter = Meter()
    left: list[dict[str, Any]] = []
    ran = cost_pipeline.run(spec, meter, lambda p: left.extend(p.table_items(p.job_id)))
    extra = cost_allin.all_in(meter, ran.chunks, spec.window, left, cost_pipeline.index_layout())
    figures = report(spec, ran, meter, extra)
    print_report(figures, out)
    if args.json:
        sys.stdout.write(json.dumps(figures, indent=2) + "\n")
    ok = ran.status == "succeeded" and ran.succeeded == spec.items and ran.webhook_received
    return 0 if ok else 1
