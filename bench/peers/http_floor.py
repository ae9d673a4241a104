"""The floor of `python -m bench load`: fanout's HTTP stack with nothing behind it.

A FastAPI app under uvicorn (uvloop, httptools, one process, as `fanout serve` runs its API)
answers the load's client mix (`bench/loadgen.py`, the same generator and the same mix) with no
store, no workers and no webhooks: `POST /jobs` reads the body and answers 202 with a new id,
`GET /jobs/{id}` a small job, `GET /jobs?limit=20` a page of twenty. What it accepts a second,
and its POST p99, are what the machine and the HTTP stack allow a service that does nothing;
fanout's figures beside it, in the same run, are what storing, running and notifying cost.
"""

from __future__ import annotations

import argparse
import itertools
import json
import socket
import subprocess
import sys
import time

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response
from rich.console import Console

from bench.load import FLOOR, ROOT, LoadResult, cpu_seconds
from bench.system import BenchError

JOB = b'{"id":"%s","status":"succeeded","total":50,"succeeded":50,"failed":0,"running":0}'
READY_SECONDS = 30.0

app = FastAPI()
ids = itertools.count()


@app.post("/jobs", status_code=202)
async def create_job(request: Request) -> Response:
    await request.body()
    return Response(b'{"id":"job_%d"}' % next(ids), 202, media_type="application/json")


@app.get("/jobs/{job_id}")
async def get_job(job_id: str) -> Response:
    return Response(JOB % job_id.encode(), media_type="application/json")


@app.get("/jobs")
async def list_jobs() -> Response:
    page = b",".join([JOB % b"job_0"] * 20)
    return Response(b'{"items":[' + page + b'],"next_cursor":null}', media_type="application/json")


def run(args: argparse.Namespace, progress: Console) -> LoadResult:
    result = LoadResult(FLOOR, args.seconds)
    with socket.create_server(("127.0.0.1", 0)) as probe:  # a free port (uvicorn's --fd
        port = probe.getsockname()[1]  # takes a Unix socket: no TCP_NODELAY, 40 ms ACK waits)
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "uvicorn", "bench.peers.http_floor:app", "--host"]
    command += ["127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    server = subprocess.Popen(command, cwd=ROOT)
    try:
        _wait_ready(url, server)
        before = cpu_seconds([server.pid])
        progress.print(f"HTTP floor: {args.clients} clients for {args.seconds:.0f} s ...")
        command = [sys.executable, "-m", "bench.loadgen", url, str(args.seconds)]
        command += [str(args.clients), f"{url}/hook"]  # never called: there are no webhooks
        done = subprocess.run(command, capture_output=True, timeout=args.seconds + 120, cwd=ROOT)
        if done.returncode != 0:
            raise BenchError(f"the load generator failed: {done.stderr.decode()[-1500:]}")
        figures = json.loads(done.stdout)
        result.server_cpu = cpu_seconds([server.pid]) - before
        result.cores["server"] = result.server_cpu / args.seconds
        result.cores["load generator"] = figures["cpu_seconds"] / args.seconds
        result.accepted, result.submit = len(figures["sent"]), figures["posts"]
        result.polls, result.errors = figures["gets"] + figures["lists"], figures["errors"]
    finally:
        server.terminate()
        server.wait(30)
    return result


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BenchError(f"the HTTP floor's server exited ({server.returncode})")
        try:
            if httpx.get(f"{url}/jobs", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise BenchError(f"the HTTP floor's server did not answer in {READY_SECONDS:.0f} s")
