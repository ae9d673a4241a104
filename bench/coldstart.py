"""`python -m bench coldstart`: import time of the Lambda handler modules in fresh interpreters,
as a Lambda cold start imports them, beside what they cannot do without.

- the API handler (`fanout.api.lambda_handler`, which builds the app and the service at import)
  beside `import fastapi, mangum, boto3, pydantic`: target at most 1.1x;
- the queue-side handlers (`fanout.workers.lambda_handlers`: chunk worker, aggregator, notifier,
  reconciler, S3 ingest): target at most 250 ms, shown beside `import boto3, pydantic`.

Each figure is the median over fresh interpreters (`python -c`), alternating the modules, of the
`import` statement's own time (`time.perf_counter()` around it; its CPU time beside it, which a
shared machine's other work disturbs less); the interpreter's start-up is
the same for all and is left out. The environment is a deployed function's (FANOUT_BACKEND=aws,
the table, queue URLs and bucket set, an API key), with no AWS call made: nothing is created
until an event needs it. Bytecode is compiled once before timing, into a temporary cache, as
a deployment package built by pip has it (this repository's own modules otherwise recompile on
every start where PYTHONDONTWRITEBYTECODE is set).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.system import BenchError

ROOT = Path(__file__).resolve().parents[1]
HANDLER = "fanout.api.lambda_handler"
QUEUE = "fanout.workers.lambda_handlers"
BARE = "fastapi, mangum, boto3, pydantic"
QUEUE_FLOOR = "boto3, pydantic"
MODULES = (HANDLER, BARE, QUEUE, QUEUE_FLOOR)
TARGET_RATIO = 1.1
TARGET_QUEUE_SECONDS = 0.25
PROBE = (
    "import time; t, c = time.perf_counter(), time.process_time(); import {};"
    " print(time.perf_counter() - t, time.process_time() - c)"
)
# What the SAM template gives the functions (infra/template.yaml), pointing nowhere: the
# handlers make no AWS call at import.
LAMBDA_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "FANOUT_BACKEND": "aws",
    "FANOUT_TABLE": "fanout-coldstart",
    "FANOUT_CHUNK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/000000000000/chunks",
    "FANOUT_DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/000000000000/dead",
    "FANOUT_NOTIFY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/000000000000/notify",
    "FANOUT_BUCKET": "fanout-coldstart",
    "FANOUT_API_KEYS": "coldstart-key",
}


def _environment(cache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FANOUT_", "AWS_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return {**env, **LAMBDA_ENV, "PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": cache}


def _once(modules: str, env: dict[str, str]) -> tuple[float, float, float]:
    """The import's seconds, its CPU seconds, and the whole process's seconds."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(modules)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"import {modules} failed: {done.stderr[-800:]}")
    took, cpu = map(float, done.stdout.strip().splitlines()[-1].split())
    return took, cpu, wall


def _summary(modules: str, found: list[tuple[float, float, float]]) -> dict[str, Any]:
    return {
        "imports": modules,
        "median_import_seconds": statistics.median(i for i, _, _ in found),
        "median_import_cpu_seconds": statistics.median(c for _, c, _ in found),
        "median_process_seconds": statistics.median(w for _, _, w in found),
        "import_seconds": [i for i, _, _ in found],
    }


def measure(runs: int = 10) -> dict[str, Any]:
    timings: dict[str, list[tuple[float, float, float]]] = {modules: [] for modules in MODULES}
    with tempfile.TemporaryDirectory(prefix="fanout-pyc-") as cache:
        env = _environment(cache)
        for modules in MODULES:
            _once(modules, env)  # compiles the bytecode into the cache
        for _ in range(runs):
            for modules in MODULES:
                timings[modules].append(_once(modules, env))
    handler, bare = _summary(HANDLER, timings[HANDLER]), _summary(BARE, timings[BARE])
    queue, floor = _summary(QUEUE, timings[QUEUE]), _summary(QUEUE_FLOOR, timings[QUEUE_FLOOR])
    return {
        "runs": runs,
        "module": HANDLER,
        "note": None,
        "handler": handler,
        "bare": bare,
        "ratio": handler["median_import_seconds"] / bare["median_import_seconds"],
        "queue": queue,
        "queue_floor": floor,
        "queue_ratio": queue["median_import_seconds"] / floor["median_import_seconds"],
    }


def table(report: dict[str, Any]) -> Table:
    out = Table(title=f"Cold-start imports: median of {report['runs']} fresh interpreters")
    for column in ("import", "import ms", "CPU ms", "whole process ms", "vs"):
        out.add_column(column, justify="left" if column == "import" else "right")
    rows: list[tuple[str, float | None]] = [("handler", report["ratio"]), ("bare", None)]
    rows += [("queue", report["queue_ratio"]), ("queue_floor", None)]
    for key, ratio in rows:
        part = report[key]
        out.add_row(
            f"import {part['imports']}",
            f"{part['median_import_seconds'] * 1000:,.0f}",
            f"{part['median_import_cpu_seconds'] * 1000:,.0f}",
            f"{part['median_process_seconds'] * 1000:,.0f}",
            "" if ratio is None else f"{ratio:.2f}x",
        )
    return out


def verdicts(report: dict[str, Any]) -> list[str]:
    ratio, queue = report["ratio"], report["queue"]["median_import_seconds"]
    return [
        f"API handler: {ratio:.2f}x `import {BARE}` (target <= {TARGET_RATIO}x:"
        f" {'met' if ratio <= TARGET_RATIO else 'MISSED'})",
        f"queue-side handlers: {queue * 1000:,.0f} ms (target <= 250 ms:"
        f" {'met' if queue <= TARGET_QUEUE_SECONDS else 'MISSED'})",
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=10, help="fresh interpreters per module")
    parser.add_argument("--json", action="store_true", help="write the figures as JSON to stdout")


def run(args: argparse.Namespace) -> int:
    try:
        report = measure(args.runs)
    except BenchError as error:
        Console(stderr=True).print(f"[red]benchmark failed:[/] {error}")
        return 1
    out = Console(stderr=args.json)
    out.print(table(report))
    for line in verdicts(report):
        out.print(line)
    if args.json:
        sys.stdout.write(json.dumps({"benchmark": "coldstart", **report}, indent=2) + "\n")
    return 0
