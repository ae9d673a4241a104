"""`python -m bench export`: a finished job's results read back over HTTP, the whole JSON Lines
export (`GET /jobs/{id}/results?format=jsonl`) beside paging the same results as JSON
(`?limit=10000` and the cursor, page after page), alternating, from one `fanout serve`.

The client reads every byte of both and checks them (every line there, in order), counting lines
in C (`bytes.count`), so the figures are the server's. The server tree's RSS is sampled while
each read runs; its growth over the idle server, per size, shows whether memory grows with N.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.fanout_system import FanoutSystem
from bench.rss import RssSampler
from bench.system import BenchError
from bench.throughput import MB, _interrupt, _sizes

PAGE_LIMIT = 10_000  # the API's largest page
TARGET_ITEMS = 1_000_000
TARGET_SECONDS = 2.0


@dataclass
class Reads:
    """Every timed read of one way at one size."""

    way: str
    items: int
    seconds: list[float] = field(default_factory=list)
    rss_growth_bytes: list[int] = field(default_factory=list)
    body_bytes: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "median_seconds": self.median, "lines_per_second": self.rate()}

    def rate(self) -> float:
        return self.items / self.median


def read_jsonl(client: httpx.Client, job_id: str, items: int) -> int:
    """The whole export; checks it has `items` lines, first and last in place. Returns bytes."""
    size = lines = 0
    head = tail = b""
    with client.stream("GET", f"/jobs/{job_id}/results", params={"format": "jsonl"}) as response:
        if response.status_code != 200:
            raise BenchError(f"export answered {response.status_code}")
        for part in response.iter_raw(1 << 20):
            head = head or part[:200]
            tail = (tail + part)[-200:]
            lines += part.count(b"\n")
            size += len(part)
    first, last = json.loads(head.split(b"\n")[0]), json.loads(tail.rstrip(b"\n").split(b"\n")[-1])
    if lines != items or first["index"] != 0 or last["index"] != items - 1:
        raise BenchError(f"export of {items} items had {lines} lines, ending {last}")
    return size


def read_pages(client: httpx.Client, job_id: str, items: int) -> int:
    """Every page, following `next_cursor`; checks the item count. Returns bytes."""
    size = count = 0
    cursor: str | None = "0"
    while cursor is not None:
        params = {"limit": str(PAGE_LIMIT), "cursor": cursor}
        response = client.get(f"/jobs/{job_id}/results", params=params)
        if response.status_code != 200:
            raise BenchError(f"page at {cursor} answered {response.status_code}")
        body = response.content
        size += len(body)
        count += body.count(b'{"index":')
        cursor = json.loads(body.rsplit(b',"next_cursor":', 1)[1][:-1])
    if count != items:
        raise BenchError(f"paging {items} items gave {count}")
    return size


WAYS = {"jsonl": read_jsonl, "pages": read_pages}


def measure(system: FanoutSystem, sizes: list[int], repeat: int, timeout: float) -> list[Reads]:
    progress = Console(stderr=True)
    sampler = RssSampler(system.root_pids)
    found: list[Reads] = []
    try:
        system.start()
        sampler.start()
        assert system.client is not None
        for items in sizes:
            system.run(items, time.monotonic() + timeout)
            job_id = system.last_job_id
            reads = {way: Reads(way, items) for way in WAYS}
            for attempt in range(repeat):
                # Alternate which goes first, so neither always reads a warmer cache.
                order = list(WAYS) if attempt % 2 == 0 else list(reversed(WAYS))
                for way in order:
                    sampler.window()
                    idle = sampler.sample()
                    started = time.perf_counter()
                    reads[way].body_bytes = WAYS[way](system.client, job_id, items)
                    reads[way].seconds.append(time.perf_counter() - started)
                    reads[way].rss_growth_bytes.append(max(0, sampler.window() - idle))
                    progress.print(f"{way}: {items:,} items, {reads[way].seconds[-1]:.3f} s")
            found += reads.values()
        return found
    finally:
        sampler.stop()
        system.stop()


def table(found: list[Reads]) -> Table:
    out = Table(title="Results export: JSON Lines beside JSON pages of 10,000")
    for column in ("way", "items", "median s", "lines/s", "vs pages", "MB", "RSS growth MB"):
        out.add_column(column, justify="left" if column == "way" else "right")
    pages = {r.items: r for r in found if r.way == "pages"}
    for r in found:
        out.add_row(
            r.way,
            f"{r.items:,}",
            f"{r.median:.3f}",
            f"{r.rate():,.0f}",
            f"{r.median / pages[r.items].median:.2f}x",
            f"{r.body_bytes / MB:,.1f}",
            f"{max(r.rss_growth_bytes) / MB:,.1f}",
        )
    return out


def verdicts(found: list[Reads]) -> list[str]:
    pages = {r.items: r for r in found if r.way == "pages"}
    lines = []
    for r in found:
        if r.way != "jsonl":
            continue
        ratio = r.median / pages[r.items].median
        lines.append(
            f"{r.items:,} lines: JSON Lines {r.median:.3f} s, {ratio:.2f}x the pages' time"
            f" (target <= 1.00x: {'met' if ratio <= 1.0 else 'MISSED'})"
        )
        if r.items == TARGET_ITEMS:
            met = "met" if r.median <= TARGET_SECONDS else "MISSED"
            lines.append(f"1,000,000 lines in {r.median:.3f} s (target <= 2 s: {met})")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes", type=_sizes, default=[100_000, 1_000_000], help="comma-separated item counts"
    )
    parser.add_argument("--repeat", type=int, default=3, help="reads of each way per size")
    parser.add_argument("--workers", type=int, default=None, help="worker processes")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a job may take")
    parser.add_argument("--json", action="store_true", help="write the figures as JSON to stdout")


def run(args: argparse.Namespace) -> int:
    out = Console(stderr=args.json)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        found = measure(FanoutSystem(args.workers), args.sizes, args.repeat, args.timeout)
    except BenchError as error:
        Console(stderr=True).print(f"[red]benchmark failed:[/] {error}")
        return 1
    except KeyboardInterrupt:
        return 130
    out.print(table(found))
    for line in verdicts(found):
        out.print(line)
    if args.json:
        report = {"benchmark": "export", "results": [r.as_dict() for r in found]}
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0
