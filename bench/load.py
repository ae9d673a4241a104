"""`python -m bench load`: the everyday load of a job service, on fanout and on Celery in one run.

`--clients` clients (200) for `--seconds` (60): 30 % post jobs of 10-100 no-op items, the rest
poll the jobs posted so far and the listing (`bench/loadgen.py` for fanout: one asyncio process
over keep-alive HTTP; `bench/peers/celery_load.py` for Celery: chords of the same sizes sent with
`apply_async` and their results polled, from threads). Each job's completion is noted where it
lands: fanout's signed webhook at a receiver process (`bench/loadhook.py`), Celery's chord
callback in Redis.

Printed per system: jobs accepted per second, p50/p99 of the submit call, p50/p99 of the polls,
p50/p99 from the submit to the completion, how long after the load ended the last accepted job
completed (the backlog drained), and the CPU each side used (cores = CPU seconds / seconds of
load), so that the load generator is seen not to be the bottleneck, and the server side's CPU
per accepted job (milliseconds, its share of the polls included, until the backlog drained):
on a shared machine the figure to compare, since others' processes take cores from wall time.

Beside them, the floor: the same generator and mix against fanout's HTTP stack with nothing
behind it (`bench/peers/http_floor.py`), what the machine allows a service that only answers.

Targets (fanout): at least 1,000 jobs/s accepted, p99 POST under 250 ms, p99 POST to webhook
under 1 s, the backlog empty within 2 s of the load ending.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from bench import loadgen
from bench.fanout_system import FanoutSystem
from bench.system import BenchError
from bench.throughput import _interrupt

ROOT = Path(__file__).resolve().parents[1]
DRAIN_SECONDS = 120.0
WARM_UP_SECONDS = 60.0
TARGETS = {"jobs_per_second": 1000.0, "post_p99": 0.25, "done_p99": 1.0, "drain": 2.0}
FLOOR = "HTTP floor"  # bench/peers/http_floor.py


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass
class LoadResult:
    system: str
    seconds: float
    accepted: int = 0
    completed: int = 0
    submit: list[float] = field(default_factory=list)
    polls: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)  # submit sent -> completion seen
    drain_seconds: float = float("nan")
    # CPU seconds of the server side from the load's start until its backlog drained: with the
    # machine shared, the CPU a job costs is steadier than jobs/s (a busy neighbour takes cores).
    server_cpu: float = float("nan")
    errors: dict[str, int] = field(default_factory=dict)
    cores: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "jobs_per_second": self.accepted / self.seconds,
            "accepted": self.accepted,
            "completed": self.completed,
            "submit_p50": percentile(self.submit, 0.5),
            "submit_p99": percentile(self.submit, 0.99),
            "poll_p50": percentile(self.polls, 0.5),
            "poll_p99": percentile(self.polls, 0.99),
            "polls_per_second": len(self.polls) / self.seconds,
            "done_p50": percentile(self.done, 0.5),
            "done_p99": percentile(self.done, 0.99),
            "drain_seconds": self.drain_seconds,
            "server_cpu_ms_per_job": 1000 * self.server_cpu / max(1, self.accepted),
            "errors": self.errors,
            "cores": self.cores,
        }


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            for each in [process, *process.children(recursive=True)]:
                times = each.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


class Hook:
    """The receiver process: started, counted while draining, then stopped for its arrivals."""

    def __init__(self, out: Path) -> None:
        self.out = out
        command = [sys.executable, "-m", "bench.loadhook", str(out)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=ROOT)
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}"

    def arrived(self) -> int:
        count: int = httpx.get(self.url, timeout=5).json()["arrived"]
        return count

    def arrivals(self) -> dict[str, float]:
        self.process.terminate()
        self.process.wait(30)
        found: dict[str, float] = json.loads(self.out.read_text())
        return found


def drain(result: LoadResult, completed: Any, ended: float) -> None:
    """Wait (polling, bounded) until every accepted job has completed; note when."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        if completed() >= result.accepted:
            result.drain_seconds = max(0.0, time.time() - ended)
            return
        time.sleep(0.05)


def warm_up(client: httpx.Client, hook: Hook) -> int:
    """One job of the load's task, from POST to webhook, before the clock starts, so the load
    meets the service as it runs, not as it starts: its workers up, and the task measured once
    (a task never measured is cut into chunks for 1 ms items until its first chunk's time is
    written: `fanout.chunking`; a service that has run the task before has it in its store).
    `--cold` skips it. The webhooks it made arrive: 1."""
    job = {"task": loadgen.TASK, "items": list(range(10)), "webhook": {"url": f"{hook.url}/hook"}}
    response = client.post("/jobs", json=job)
    if response.status_code != 202:
        raise BenchError(f"the warm-up job was refused: {response.status_code} {response.text}")
    deadline = time.monotonic() + WARM_UP_SECONDS
    while hook.arrived() < 1:
        if time.monotonic() > deadline:
            raise BenchError(f"the warm-up job's webhook did not come in {WARM_UP_SECONDS:.0f} s")
        time.sleep(0.05)
    return 1


def run_fanout(args: argparse.Namespace, progress: Console) -> LoadResult:
    result = LoadResult("fanout", args.seconds)
    system = FanoutSystem(args.workers)
    with tempfile.TemporaryDirectory(prefix="fanout-load-") as scratch:
        hook = Hook(Path(scratch) / "arrivals.json")
        try:
            system.start()
            assert system.client is not None
            warmed = 0 if args.cold else warm_up(system.client, hook)
            url = str(system.client.base_url)
            command = [sys.executable, "-m", "bench.loadgen", url, str(args.seconds)]
            command += [str(args.clients), f"{hook.url}/hook"]
            before = cpu_seconds(system.root_pids())
            hook_before = cpu_seconds([hook.process.pid])
            progress.print(f"fanout: {args.clients} clients for {args.seconds:.0f} s ...")
            done = subprocess.run(
                command, capture_output=True, timeout=args.seconds + 120, cwd=ROOT
            )
            ended = time.time()
            if done.returncode != 0:
                raise BenchError(f"the load generator failed: {done.stderr.decode()[-1500:]}")
            figures = json.loads(done.stdout)
            result.cores["server"] = (cpu_seconds(system.root_pids()) - before) / args.seconds
            result.accepted, result.submit = len(figures["sent"]), figures["posts"]
            result.polls, result.errors = figures["gets"] + figures["lists"], figures["errors"]
            result.cores["load generator"] = figures["cpu_seconds"] / args.seconds
            result.cores["webhook receiver"] = (
                cpu_seconds([hook.process.pid]) - hook_before
            ) / args.seconds
            drain(result, lambda: hook.arrived() - warmed, ended)
            result.server_cpu = cpu_seconds(system.root_pids()) - before
        finally:
            system.stop()
            arrivals = hook.arrivals()
    result.done = [arrivals[job] - at for job, at in figures["sent"].items() if job in arrivals]
    result.completed = len(result.done)
    return result


def table(results: list[LoadResult]) -> Table:
    out = Table(title="Small-job load: posting, polling and completion")
    columns = [
        "system",
        "jobs/s",
        "submit p50/p99 ms",
        "poll p50/p99 ms",
        "polls/s",
        "done p50/p99 s",
        "drain s",
        "cores (server / load)",
        "server CPU ms/job",
    ]
    for column in columns:
        out.add_column(column, justify="left" if column == "system" else "right")
    for r in results:
        s = r.summary()
        completes = r.system != FLOOR  # the floor answers and forgets: no completions, no drain
        out.add_row(
            r.system,
            f"{s['jobs_per_second']:,.0f}",
            f"{s['submit_p50'] * 1000:,.0f} / {s['submit_p99'] * 1000:,.0f}",
            f"{s['poll_p50'] * 1000:,.1f} / {s['poll_p99'] * 1000:,.1f}",
            f"{s['polls_per_second']:,.0f}",
            f"{s['done_p50']:.2f} / {s['done_p99']:.2f}" if completes else "-",
            f"{r.drain_seconds:.2f}" if completes else "-",
            f"{r.cores.get('server', 0):.2f} / {r.cores.get('load generator', 0):.2f}",
            f"{s['server_cpu_ms_per_job']:.1f}",
        )
    return out


def verdicts(fanout: LoadResult, floor: LoadResult | None) -> list[str]:
    s = fanout.summary()
    checks = [
        ("jobs accepted/s", s["jobs_per_second"], ">=", TARGETS["jobs_per_second"]),
        ("p99 POST s", s["submit_p99"], "<", TARGETS["post_p99"]),
        ("p99 POST to webhook s", s["done_p99"], "<", TARGETS["done_p99"]),
        ("backlog drained s after the load", fanout.drain_seconds, "<=", TARGETS["drain"]),
    ]
    lines = []
    for name, value, op, target in checks:
        ok = value >= target if op == ">=" else value <= target if op == "<=" else value < target
        lines.append(
            f"fanout {name}: {value:,.3f} (target {op} {target:g}: {'met' if ok else 'MISSED'})"
        )
    if floor is not None:
        rate, f = s["jobs_per_second"], floor.summary()
        floor_rate, floor_p99 = f["jobs_per_second"], f["submit_p99"] * 1000
        lines.append(
            f"fanout accepted {rate:,.0f} jobs/s, {rate / max(1e-9, floor_rate):.0%} of the HTTP"
            f" floor's {floor_rate:,.0f} (its POST p99 {floor_p99:,.0f} ms): the same clients"
            " against fanout's HTTP stack with nothing behind it"
        )
    missing = fanout.accepted - fanout.completed
    if missing:
        lines.append(f"fanout: {missing} accepted jobs had no webhook {DRAIN_SECONDS:.0f} s after")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of load per system")
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=None, help="workers (default: CPUs)")
    parser.add_argument("--skip-celery", action="store_true", help="no Celery run")
    parser.add_argument(
        "--skip-floor", action="store_true", help="no run of the HTTP stack alone (the floor)"
    )
    parser.add_argument(
        "--cold", action="store_true", help="no warm-up job: the task is new to the service"
    )
    parser.add_argument("--json", action="store_true", help="write the figures as JSON to stdout")


def run(args: argparse.Namespace) -> int:
    progress = Console(stderr=True)
    signal.signal(signal.SIGTERM, _interrupt)
    results: list[LoadResult] = []
    try:
        results.append(run_fanout(args, progress))
        if not args.skip_floor:
            from bench.peers import http_floor

            results.append(http_floor.run(args, progress))
        if not args.skip_celery:
            from bench.peers import celery_load

            results.append(celery_load.run(args, progress))
    except BenchError as error:
        progress.print(f"[red]benchmark failed:[/] {error}")
        return 1
    except KeyboardInterrupt:
        return 130
    out = Console(stderr=args.json)
    out.print(table(results))
    floor = next((r for r in results if r.system == FLOOR), None)
    for line in verdicts(results[0], floor):
        out.print(line)
    if args.json:
        report: dict[str, Any] = {"benchmark": "load", "arguments": vars(args)}
        report["results"] = [r.summary() | {"raw": asdict(r)} for r in results]
        sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
    return 0
