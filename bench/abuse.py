"""What one hostile peer costs `fanout serve`, each figure beside a well-behaved peer's in the
same run (all on 127.0.0.1, each peer bounded in bytes and seconds):

- peak RSS (VmHWM) of the server after a webhook to a receiver answering 200 with a 1 GiB body,
  beside one to a receiver answering 204 with nothing (a fresh server each);
- how late a healthy receiver's webhook arrives after its job ended, beside 8 receivers that
  drip their answers a byte every half second (FANOUT_WEBHOOK_TIMEOUT=30), and alone;
- of N connections that drip their request heads a byte every half second, how many the server
  closed within 30 s (FANOUT_HEADER_TIMEOUT=2), and whether /healthz still answered.

It imports nothing of fanout: run with another environment's Python (`/path/venv/bin/python -m
bench abuse`), it measures that environment's `fanout serve`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.fanout_system import bound_port, on_port_0, serve_command
from bench.hostile import Dripper, HugeBody, SlowClients, peak_rss_mb
from bench.webhook import WebhookReceiver

DEADLINE = 120.0
STARTUP = 90.0  # a loaded machine (the test suite beside it) starts a server slowly


@contextlib.contextmanager
def serving(env: dict[str, str]) -> Iterator[tuple[httpx.Client, int, int]]:
    """A fresh `fanout serve` (one worker, no keys), its client, pid and port."""
    data = Path(tempfile.mkdtemp(prefix="fanout-abuse-"))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FANOUT_")}
    clean.update(FANOUT_WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8", **env)
    command = [*serve_command(), *on_port_0(data / "serve.port"), "--workers", "1"]
    command += ["--data-dir", str(data)]
    with (data / "serve.log").open("wb") as log:
        process = subprocess.Popen(command, env=clean, stdout=log, stderr=log, cwd=data)
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, data, ignore_errors=True)
        stack.callback(process.wait, 30)
        stack.callback(process.terminate)
        port = bound_port(process, data / "serve.port", time.monotonic() + STARTUP)
        client = stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30))
        _until(lambda: _healthy(client), STARTUP)
        yield client, process.pid, port


def _healthy(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def _until(condition: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark's condition was not met in time")
        time.sleep(0.02)
    return value


def _webhook_job(client: httpx.Client, url: str) -> str:
    body = {"task": "echo", "items": [1], "webhook": {"url": url}}
    response = client.post("/jobs", json=body)
    response.raise_for_status()
    job_id: str = response.json()["id"]
    return job_id


def _attempted(client: httpx.Client, job_id: str) -> bool:
    return bool(client.get(f"/jobs/{job_id}").json()["webhook"]["attempts"])


def rss(huge: bool) -> float:
    """Peak RSS in MB of a server that made one webhook attempt."""
    with serving({}) as (client, pid, _), contextlib.ExitStack() as stack:
        url = stack.enter_context(HugeBody().running()).url if huge else _receiver(stack)
        job_id = _webhook_job(client, url)
        _until(lambda: _attempted(client, job_id), DEADLINE)
        return round(peak_rss_mb(pid), 1)


def _receiver(stack: contextlib.ExitStack) -> str:
    receiver = WebhookReceiver()
    receiver.start()
    stack.callback(receiver.stop)
    return receiver.url


def delay(drippers: int) -> float:
    """Seconds from a healthy job's end to its webhook's arrival, beside `drippers`."""
    env = {"FANOUT_WEBHOOK_TIMEOUT": "30"}
    with serving(env) as (client, _, _), contextlib.ExitStack() as stack:
        hostile = [stack.enter_context(Dripper(lasting=60.0).running()) for _ in range(drippers)]
        for dripper in hostile:
            _webhook_job(client, dripper.url)
        _until(lambda: all(s.sent for d in hostile for s in d.connections()), DEADLINE)
        receiver = WebhookReceiver()
        receiver.start()
        stack.callback(receiver.stop)
        job_id = _webhook_job(client, receiver.url)
        received = receiver.wait(job_id, time.monotonic() + DEADLINE)
        if received is None:
            raise TimeoutError("the healthy webhook did not arrive")
        arrived = time.time() - (time.perf_counter() - received.at)  # perf_counter to wall
        ended = client.get(f"/jobs/{job_id}").json()["finished_at"]
        return round(arrived - datetime.fromisoformat(ended).timestamp(), 3)


def slowloris(count: int) -> dict[str, Any]:
    with serving({"FANOUT_HEADER_TIMEOUT": "2"}) as (client, _, port):
        head = b"GET /jobs HTTP/1.1\r\nHost: localhost\r\n"
        clients = SlowClients(port, count, head)
        try:
            clients.drip(b"x", every=0.5, lasting=30.0)
            healthy = _healthy(client)
        finally:
            closed = len(clients.answers)
            clients.close()
        return {"connections": count, "closed_within_30s": closed, "healthz_answered": healthy}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--slowloris", type=int, default=200, help="connections (200)")
    parser.add_argument("--drippers", type=int, default=8, help="dripping receivers (8)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def run(args: argparse.Namespace) -> int:
    figures = {
        "peak_rss_mb": {"receiver_1GiB": rss(huge=True), "receiver_empty": rss(huge=False)},
        "healthy_webhook_delay_s": {
            f"beside_{args.drippers}_drippers": delay(args.drippers),
            "alone": delay(0),
        },
        "slowloris": slowloris(args.slowloris),
    }
    print(json.dumps(figures, indent=None if args.json else 2))
    return 0
