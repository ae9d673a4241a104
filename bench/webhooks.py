"""`python -m bench webhooks`: CPU per webhook attempt, fanout's sender beside httpx's client.

Both POST the same signed event to the same receiver (`bench.loadhook`, a process of its own on
loopback that answers 204 at once), `--concurrency` at a time on one asyncio loop, with no
keep-alive (the notifier keeps none: `fanout.workers.notifier.client`), and alternate for
`--rounds`. The figure is this process's CPU time (`time.process_time()`) over `--attempts`
attempts, per attempt:

- **fanout**: `fanout.webhooks.send`, the whole attempt the notifier makes (signing, the URL and
  address check, h11 over an asyncio connection, `fanout.http1`);
- **httpx**: the same signature and check, then `httpx.AsyncClient.send`, as the notifier sent
  until stop 21.

Issue 9's load target needs a job's whole CPU (POST, polls, worker, webhook) under ~1.8 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.system import BenchError

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]
PAYLOAD = b'{"type":"job.succeeded","timestamp":"2026-12-04T00:00:00Z","data":{"id":"job_1"}}'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--attempts", type=int, default=3000, help="attempts per round and side")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--concurrency", type=int, default=8, help="attempts at once")
    parser.add_argument("--json", action="store_true", help="figures as JSON on stdout")


@contextlib.contextmanager
def receiver() -> Iterator[str]:
    """`bench.loadhook` on a free loopback port; its URL."""
    with tempfile.TemporaryDirectory(prefix="fanout-bench-webhooks-") as scratch:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.loadhook", str(Path(scratch) / "arrivals.json")],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            port = process.stdout.readline().strip()
            if not port.isdigit():
                raise BenchError("the webhook receiver did not start")
            yield f"http://127.0.0.1:{port}/hook"
        finally:
            process.terminate()
            process.wait(timeout=30)


Sender = Callable[[int], Awaitable[int | None]]


def fanout_sender(url: str) -> Sender:
    from fanout import webhooks
    from fanout.models import EventId, JobId, WebhookEvent
    from fanout.workers.notifier import client

    http, secret = client(), webhooks.new_secret()

    async def send(number: int) -> int | None:
        event = WebhookEvent(
            id=EventId(f"evt_{number}"),
            job_id=JobId(f"job_{number}"),
            url=url,
            secret=secret,
            payload=PAYLOAD,
        )
        return (await webhooks.send(event, http, LOOPBACK, 10.0)).status_code

    return send


def httpx_sender(url: str) -> Sender:
    import httpx
    from standardwebhooks import Webhook

    from fanout import destinations, webhooks

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    http = httpx.AsyncClient(follow_redirects=False, limits=limits)
    signer = Webhook(webhooks.new_secret())

    async def send(number: int) -> int | None:
        _, host, port = destinations.parts(url)
        destinations.checked(host, destinations.lookup(host, port), LOOPBACK)
        now = time.time()
        event_id = f"evt_{number}"
        headers = {
            "content-type": "application/json",
            "user-agent": "fanout-webhooks/1",
            "webhook-id": event_id,
            "webhook-timestamp": str(int(now)),
            "webhook-signature": signer.sign(
                event_id, datetime.fromtimestamp(now, UTC), PAYLOAD.decode()
            ),
        }
        async with asyncio.timeout(10.0):
            response = await http.post(url, content=PAYLOAD, headers=headers)
        return response.status_code

    return send


async def cpu_per_attempt(
    sender: Callable[[str], Sender], url: str, attempts: int, concurrency: int
) -> float:
    """Seconds of this process's CPU per attempt (the sender built on this loop); every attempt
    must be answered 204."""
    send = sender(url)
    slots = asyncio.Semaphore(concurrency)
    answers: list[int | None] = []

    async def one(number: int) -> None:
        async with slots:
            answers.append(await send(number))

    await asyncio.gather(*(one(n) for n in range(min(100, attempts))))  # warm: imports, TLS, ...
    answers.clear()
    started = time.process_time()
    await asyncio.gather(*(one(n) for n in range(attempts)))
    spent = time.process_time() - started
    if answers != [204] * attempts:
        raise BenchError(f"not every attempt was answered 204: {sorted(set(map(str, answers)))}")
    return spent / attempts


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    figures: dict[str, list[float]] = {"fanout": [], "httpx": []}
    senders = {"fanout": fanout_sender, "httpx": httpx_sender}
    with receiver() as url:
        for _ in range(args.rounds):
            for side, sender in senders.items():
                seconds = cpu_per_attempt(sender, url, args.attempts, args.concurrency)
                figures[side].append(asyncio.run(seconds))
    median = {side: statistics.median(values) for side, values in figures.items()}
    ratio = median["httpx"] / median["fanout"]
    table = Table(title="CPU per webhook attempt (this process, no keep-alive)")
    table.add_column("sender")
    table.add_column("ms CPU / attempt (median)", justify="right")
    table.add_column("rounds", justify="right")
    for side, values in figures.items():
        rounds = ", ".join(f"{value * 1000:.3f}" for value in values)
        table.add_row(side, f"{median[side] * 1000:.3f}", rounds)
    console.print(table)
    console.print(f"httpx's client / fanout's sender: {ratio:.2f}x the CPU per attempt")
    if args.json:
        report = {
            side: {"ms_cpu_per_attempt": median[side] * 1000, "rounds_ms": [v * 1000 for v in vs]}
            for side, vs in figures.items()
        }
        print(json.dumps({**report, "ratio": ratio, "attempts": args.attempts}))
    return 0
