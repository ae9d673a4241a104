"""Celery under `python -m bench load`: the same client mix as fanout's, on a private Redis and
a prefork worker pool of the same size (`celery_system.CeleryCluster`), with completion noted by
each chord's callback (`celery_app.load_done`) in a Redis hash."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from rich.console import Console

from bench.load import ROOT, LoadResult, cpu_seconds, drain
from bench.peers.celery_system import CeleryCluster, missing
from bench.system import BenchError

ARRIVALS = "load-arrivals"


def run(args: argparse.Namespace, progress: Console) -> LoadResult:
    if missing():
        raise BenchError(f"the Celery peer cannot run: {', '.join(missing())} missing")
    result = LoadResult("celery", args.seconds)
    cluster = CeleryCluster(args.workers or os.cpu_count() or 1, io_concurrency=1)
    try:
        cluster.start()
        cluster.use("prefork")
        assert cluster.client is not None
        markers = cluster.client
        markers.delete(ARRIVALS)
        command = [sys.executable, "-m", "bench.peers.celery_loadgen", cluster.url]
        command += [str(args.seconds), str(args.clients)]
        before = cpu_seconds(cluster.root_pids())
        progress.print(f"celery: {args.clients} clients for {args.seconds:.0f} s ...")
        done = subprocess.run(command, capture_output=True, timeout=args.seconds + 120, cwd=ROOT)
        ended = time.time()
        if done.returncode != 0:
            raise BenchError(f"the Celery load generator failed: {done.stderr.decode()[-1500:]}")
        figures = json.loads(done.stdout)
        result.cores["server"] = (cpu_seconds(cluster.root_pids()) - before) / args.seconds
        result.cores["load generator"] = figures["cpu_seconds"] / args.seconds
        result.accepted, result.submit = len(figures["sent"]), figures["posts"]
        result.polls, result.errors = figures["gets"], figures["errors"]
        drain(result, lambda: int(markers.hlen(ARRIVALS)), ended)
        result.server_cpu = cpu_seconds(cluster.root_pids()) - before
        found = markers.hgetall(ARRIVALS).items()
        arrivals = {k.decode() if isinstance(k, bytes) else k: float(v) for k, v in found}
    finally:
        cluster.stop()
    result.done = [arrivals[key] - at for key, at in figures["sent"].items() if key in arrivals]
    result.completed = len(result.done)
    return result
