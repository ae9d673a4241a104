"""The bill beside the requests, for the job `python -m bench cost` ran: Lambda compute (each
invocation's duration, and the INIT of the containers the job starts), S3 and DynamoDB storage
for as long as the template keeps the job, and CloudWatch Logs.

What is measured and what is assumed:

- durations: each handler call's wall time here, rounded up to Lambda's 1 ms, at the
  template's memory. The AWS requests inside went to a local emulator, not to AWS: a few ms
  each here, similar to DynamoDB's and SQS's in-region latency.
- INIT: the CPU time of a fresh interpreter importing the function's handler module (median of
  three runs), stretched to the vCPU share Lambda gives the template's memory, once per
  container the job starts on an idle deployment: one API, one aggregator, one notifier, and
  as many chunk workers as run at once (its window, at most the five batches Lambda's SQS event
  source starts with). Warm containers (a busy deployment) start none; both are printed.
- storage: every S3 object the job left (sizes as put) and every table item and index entry
  (sizes by DynamoDB's rules, with its 100-byte overhead), kept `RetentionDays` (the template's
  default; the table's TTL and the bucket's lifecycle delete them then).
- logs: Lambda's platform records per invocation in JSON (start and report, about 1 KB; the
  service itself logs only warnings), and one HTTP API access-log line per request, ingested
  and kept `LogRetentionDays`.
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import cost_pipeline
from bench.cost_meter import Meter, item_size
from fanout import pricing

ROOT = Path(__file__).resolve().parents[1]
# From infra/template.yaml (tests/test_bench_cost_smoke.py checks they still agree).
MEMORY_GB = 512 / 1024  # Globals: MemorySize
RETENTION_DAYS = 7  # RetentionDays' default
LOG_RETENTION_DAYS = 30  # LogRetentionDays' default
PLATFORM_LOG_BYTES = 1000  # per invocation: platform.start and platform.report, JSON
ACCESS_LOG_BYTES = 300  # per API request
HANDLERS = {  # the module each function's container imports at INIT
    cost_pipeline.API: "fanout.api.lambda_handler",
    cost_pipeline.WORKER: "fanout.workers.lambda_handlers",
    cost_pipeline.AGGREGATOR: "fanout.workers.lambda_handlers",
    cost_pipeline.NOTIFIER: "fanout.workers.lambda_handlers",
}
INIT_RUNS = 3
MB_PER_VCPU = 1769
# Lambda's SQS event source starts five concurrent batches (invocations) when messages arrive,
# and scales up from there by the minute (https://docs.aws.amazon.com/lambda/latest/dg/
# services-sqs-scaling.html): a job on an idle deployment starts at most that many workers.
SQS_FIRST_CONCURRENCY = 5


@dataclass
class AllIn:
    """Dollars for one job by line, beside the requests; `cold` includes the INIT lines."""

    lines: dict[str, float] = field(default_factory=dict)
    init_seconds: dict[str, float] = field(default_factory=dict)
    containers: dict[str, int] = field(default_factory=dict)
    stored_bytes: dict[str, int] = field(default_factory=dict)

    def total(self, cold: bool = True) -> float:
        return sum(d for what, d in self.lines.items() if cold or not what.startswith("INIT"))


def init_cpu_seconds(module: str) -> float:
    """Median CPU time (user + system) of a fresh interpreter that imports `module`: the
    interpreter's start and the import, as Lambda's INIT runs them. CPU time, not wall time,
    so a busy machine does not inflate it."""
    queue = "https://sqs.us-east-1.amazonaws.com/123456789012/fanout"
    env = {  # configured as the template configures it, so the import makes no request
        **os.environ,
        "AWS_DEFAULT_REGION": pricing.REGION,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "FANOUT_BACKEND": "aws",
        "FANOUT_API_KEYS": "bench",
        "FANOUT_CHUNK_QUEUE_URL": f"{queue}-chunks",
        "FANOUT_DEAD_LETTER_QUEUE_URL": f"{queue}-dead",
        "FANOUT_NOTIFY_QUEUE_URL": f"{queue}-notify",
    }
    env.pop("AWS_LAMBDA_FUNCTION_NAME", None)
    runs = []
    for _ in range(INIT_RUNS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            [sys.executable, "-c", f"import {module}"], cwd=ROOT, env=env, capture_output=True
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"importing {module} failed: {done.stderr.decode()[-600:]}")
        runs.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(runs)


def init_gb_seconds(cpu_seconds: float) -> float:
    """Lambda gives a function one vCPU per 1,769 MB (https://docs.aws.amazon.com/lambda/latest/
    dg/configuration-memory.html): below that, a CPU-bound INIT of c CPU-seconds lasts
    c x 1769 / memory seconds, so it bills c x 1769 / 1024 GB-s whatever the memory."""
    memory_mb = MEMORY_GB * 1024
    seconds = cpu_seconds * max(1.0, MB_PER_VCPU / memory_mb)
    return gb_seconds(seconds)


def gb_seconds(seconds: float) -> float:
    return math.ceil(seconds * 1000) / 1000 * MEMORY_GB


def months(days: float) -> float:
    return days * 24 / pricing.HOURS_PER_MONTH


def table_bytes(items: list[dict[str, Any]], indexes: dict[str, tuple[list[str], str]]) -> int:
    """Bytes DynamoDB stores for these items and their index entries."""
    total = 0
    for item in items:
        total += item_size(item) + pricing.DYNAMODB_ITEM_OVERHEAD
        for keys, projection in indexes.values():
            if all(k in item for k in keys):
                held = item if projection == "ALL" else {k: item[k] for k in ("pk", "sk", *keys)}
                total += item_size(held) + pricing.DYNAMODB_ITEM_OVERHEAD
    return total


def all_in(
    meter: Meter,
    chunks: int,
    window: int,
    items: list[dict[str, Any]],
    indexes: dict[str, tuple[list[str], str]],
) -> AllIn:
    bill = AllIn()
    for function, durations in sorted(meter.durations.items()):
        billed = sum(gb_seconds(d) for d in durations)
        bill.lines[f"Lambda GB-s: {function}"] = billed * pricing.LAMBDA_PER_GB_SECOND
    workers = min(window, chunks, SQS_FIRST_CONCURRENCY)
    bill.containers = {f: 1 for f in HANDLERS} | {cost_pipeline.WORKER: workers}
    cpu = {module: init_cpu_seconds(module) for module in set(HANDLERS.values())}
    for function, module in HANDLERS.items():
        bill.init_seconds[function] = cpu[module]
        gbs = bill.containers[function] * init_gb_seconds(cpu[module])
        bill.lines[f"INIT GB-s: {function}"] = gbs * pricing.LAMBDA_PER_GB_SECOND
    for key, size in meter.stored.items():
        prefix = key.split("/", 2)[1]
        bill.stored_bytes[prefix] = bill.stored_bytes.get(prefix, 0) + size
    s3_gb = sum(bill.stored_bytes.values()) / 1e9
    bill.lines["S3 storage"] = s3_gb * months(RETENTION_DAYS) * pricing.S3_STANDARD_PER_GB_MONTH
    dynamodb_gb = table_bytes(items, indexes) / 1e9
    bill.lines["DynamoDB storage"] = (
        dynamodb_gb * months(RETENTION_DAYS) * pricing.DYNAMODB_STORAGE_PER_GB_MONTH
    )
    invocations = sum(len(d) for d in meter.durations.values())
    requests = len(meter.durations.get(cost_pipeline.API, []))
    log_gb = (invocations * PLATFORM_LOG_BYTES + requests * ACCESS_LOG_BYTES) / 1e9
    bill.lines["CloudWatch Logs"] = log_gb * (
        pricing.LOGS_INGESTION_PER_GB
        + months(LOG_RETENTION_DAYS) * pricing.LOGS_STORAGE_PER_GB_MONTH
    )
    return bill
