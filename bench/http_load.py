"""The HTTP side: requests/s and p50/p99 latency of `GET /jobs/{id}` on fanout serve, beside a
bare FastAPI route returning static JSON, served by uvicorn with the same settings as fanout
serve (access log off, log level warning, uvicorn's defaults otherwise: uvloop, httptools).

The load generator is Debian's `wrk` (`wrk -t1 -c50 -d<s>s --latency`) on loopback; rounds
alternate between the two servers and the median round is reported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import psutil
from fastapi import FastAPI

from bench.fanout_system import STARTUP_SECONDS, FanoutSystem, stop_tree
from bench.system import BenchError

CONNECTIONS = 50
BACKLOG = 2048  # uvicorn's own default for a socket it binds
LOAD_GENERATOR = f"wrk -t1 -c{CONNECTIONS} --latency (Debian's wrk, on loopback)"
STATIC = {"id": "static", "status": "succeeded", "counts": {"total": 1, "succeeded": 1}}


def bare_app() -> FastAPI:
    """`uvicorn bench.http_load:bare_app --factory`: one route returning static JSON."""
    app = FastAPI()

    @app.get("/static")
    async def static() -> dict[str, Any]:
        return STATIC

    return app


@dataclass(frozen=True)
class Load:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    # CPU time (user + system) the server process spent per request: less sensitive than
    # requests/s to other work on a shared machine. 0 where it was not measured.
    cpu_us_per_request: float = 0.0


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> Load:
    """Requests/s and the 50% and 99% lines of `wrk --latency`'s distribution."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    found = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s))\s*$", output, re.MULTILINE))
    if rps is None or set(found) != {"50", "99"}:
        raise BenchError(f"could not read wrk's output: {output[-500:]}")

    def ms(text: str) -> float:
        unit = "us" if text.endswith("us") else "ms" if text.endswith("ms") else "s"
        return float(text.removesuffix(unit)) * _UNITS[unit]

    return Load(float(rps.group(1)), ms(found["50"]), ms(found["99"]))


def requests_made(output: str) -> int:
    found = re.search(r"(\d+) requests in", output)
    return int(found.group(1)) if found else 0


def _cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def wrk(url: str, seconds: float, server_pid: int | None = None) -> Load:
    """One wrk run; with `server_pid`, also the CPU that process spent per request."""
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:.0f}s", "--latency", url]
    cpu = _cpu_seconds(server_pid)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    cpu = _cpu_seconds(server_pid) - cpu
    if done.returncode != 0:
        raise BenchError(f"wrk failed: {done.stderr[-500:]}")
    load = parse_wrk(done.stdout)
    made = requests_made(done.stdout)
    if server_pid is None or not made:
        return load
    return dataclasses.replace(load, cpu_us_per_request=cpu / made * 1e6)


class BareServer:
    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        # The socket is bound here and handed to uvicorn (--fd): no other process can take
        # its port between our choosing it and the server's listening on it.
        with socket.socket() as listener:
            # uvicorn takes an --fd socket for a Unix one, so asyncio leaves Nagle's algorithm on
            # for each connection it accepts, and every answer written in two parts waited for
            # the client's delayed ACK (~40 ms: 1,136 req/s, p50 44 ms). Linux gives accepted
            # connections the listener's TCP_NODELAY.
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            listener.bind(("127.0.0.1", 0))
            listener.listen(BACKLOG)
            port = listener.getsockname()[1]
            command = [sys.executable, "-m", "uvicorn", "bench.http_load:bare_app", "--factory"]
            command += ["--fd", str(listener.fileno())]
            command += ["--no-access-log", "--log-level", "warning"]
            self.process = subprocess.Popen(command, pass_fds=[listener.fileno()])
        self.url = f"http://127.0.0.1:{port}/static"
        deadline = time.monotonic() + STARTUP_SECONDS
        with httpx.Client() as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise BenchError(f"the bare server exited with {self.process.returncode}")
                try:
                    if client.get(self.url, timeout=1.0).status_code == 200:
                        return
                except httpx.TransportError:
                    # Not listening yet: give it a moment, noticing at once if it exits.
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.process.wait(0.05)
        raise BenchError("the bare server did not answer in time")

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def stop(self) -> None:
        if self.process is not None:
            stop_tree(self.process)
            self.process = None


def missing() -> list[str]:
    return [] if shutil.which("wrk") else ["wrk"]


FANOUT, BARE = "GET /jobs/{id}", "bare FastAPI route"
BUSY = "GET /jobs/{id}, a job running"
# The job run beside the busy rounds: chunks of one 5 ms item, so the workers commit a result
# (and the polled job's cached read is dropped) some hundred times a second; enough items to
# outlast the round, cancelled after it.
BUSY_ITEM_SECONDS = 0.005
BUSY_ITEMS_PER_SECOND = 500


def _start_busy(client: httpx.Client, seconds: float) -> str:
    items = [BUSY_ITEM_SECONDS] * int(BUSY_ITEMS_PER_SECOND * (seconds + 5))
    job = client.post("/jobs", json={"task": "sleep", "items": items, "chunk_size": 1})
    if job.status_code != 202:
        raise BenchError(f"POST /jobs answered {job.status_code}: {job.text[:300]}")
    return str(job.json()["id"])


def _busy_round(fanout: FanoutSystem, url: str, seconds: float) -> Load:
    """wrk on `url` while another job runs on the workers, committing as it goes."""
    assert fanout.client is not None
    busy = _start_busy(fanout.client, seconds)
    try:
        return wrk(url, seconds, fanout.api_pid)
    finally:
        fanout.client.post(f"/jobs/{busy}/cancel")


def measure(
    fanout: FanoutSystem, seconds: float, rounds: int, busy: bool = False
) -> dict[str, Any]:
    """Submits one small job to the (started) fanout server, then alternates wrk rounds against
    its `GET /jobs/{id}` and the bare route (and, with `busy`, the same poll while another job
    runs). Reports the round of median requests/s."""
    assert fanout.client is not None and fanout.receiver is not None
    job = fanout.client.post("/jobs", json={"task": "echo", "items": list(range(10))})
    if job.status_code != 202:
        raise BenchError(f"POST /jobs answered {job.status_code}: {job.text[:300]}")
    job_url = f"{fanout.client.base_url}/jobs/{job.json()['id']}"
    bare = BareServer()
    bare.start()
    try:
        names = (FANOUT, BARE, BUSY) if busy else (FANOUT, BARE)
        loads: dict[str, list[Load]] = {name: [] for name in names}
        for _ in range(rounds):
            loads[BARE].append(wrk(bare.url, seconds, bare.pid))
            loads[FANOUT].append(wrk(job_url, seconds, fanout.api_pid))
            if busy:
                loads[BUSY].append(_busy_round(fanout, job_url, seconds))
    finally:
        bare.stop()
    report: dict[str, Any] = {"load_generator": LOAD_GENERATOR, "seconds": seconds}
    for name, found in loads.items():
        middle = sorted(found, key=lambda load: load.requests_per_second)[(len(found) - 1) // 2]
        report[name] = {**asdict(middle), "rounds": [asdict(load) for load in found]}
    return report
