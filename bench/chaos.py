"""`python -m bench chaos`: the fault campaign against real `fanout serve` processes, each
fault beside the figure it must meet, printed as fault | figure | pass.

- kill tree: SIGKILL of the whole `fanout serve` tree mid-job (N items of a 1 ms task), then a
  restart: seconds from the restart to the job's end (target: at most 10 s; without leases the
  dead workers' chunks wait out the 60 s visibility timeout).
- kill forkserver: SIGKILL of the forkserver that forks the workers, mid-job: worker processes
  running when the job ends (target: as many as before, not a second set beside them: with the
  forkserver gone, multiprocessing reports its processes ended), seconds to the end, and
  processes left once the server stopped (target: none).
- crash at <point>: a SIGKILL at each step of submit, record and finalize (`FANOUT_CRASH_AT`),
  then a restart: seconds from the restart to the job's end (target: at most 30 s).
- full disk (as root): the data directory on a 20 MB tmpfs filled up: POST answers while full
  (503s, never a 500), then seconds from freeing space to every accepted job's end.
- twin servers: two `fanout serve` on one data directory, M jobs with webhooks: webhooks
  delivered twice (target: none).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.fanout_system import bound_port, on_port_0

_started = itertools.count()
POINTS = ("submit.stored", "record.stored", "finalize.output", "finalize.claimed")


@dataclass(frozen=True)
class Outcome:
    fault: str
    figure: str
    passed: bool
    seconds: float | None = None


class Hooks:
    """Counts every webhook delivery by its `webhook-id` (duplicates included)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                hooks.ids.append(self.headers.get("webhook-id", ""))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Serve:
    """One `fanout serve` process on a data directory."""

    def __init__(self, data: Path, workers: int, env: dict[str, str] | None = None) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("FANOUT_")}
        environment |= {"FANOUT_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8", **(env or {})}
        # Twin servers share a data directory: each writes its own port file beside it.
        port_file = data.parent / f"serve-{next(_started)}.port"
        command = [sys.executable, "-m", "fanout", "serve", *on_port_0(port_file)]
        command += ["--workers", str(workers), "--data-dir", str(data)]
        self.process = subprocess.Popen(
            command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.url = f"http://127.0.0.1:{bound_port(self.process, port_file, time.monotonic() + 60)}"
        self.http = httpx.Client(base_url=self.url, timeout=30)
        until(lambda: self._answers(), 60, "fanout serve to start")

    def _answers(self) -> bool:
        with contextlib.suppress(httpx.TransportError):
            return self.http.get("/healthz").status_code == 200
        return False

    def job(self, job_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.http.get(f"/jobs/{job_id}").json()
        return found

    def ended(self, job_id: str, timeout: float) -> float:
        """Seconds until the job ends (at most `timeout`)."""
        start = time.monotonic()
        until(lambda: self.job(job_id)["status"] in TERMINAL, timeout, f"job {job_id} to end")
        return time.monotonic() - start

    def kill(self) -> None:
        tree = [self.process, *psutil.Process(self.process.pid).children(recursive=True)]
        for process in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self.process.wait()

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


TERMINAL = {"succeeded", "failed", "cancelled"}


def until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fanout-chaos-") as folder:
        yield Path(folder)


def body(items: int, url: str | None = None) -> dict[str, Any]:
    job: dict[str, Any] = {"task": "sleep", "items": [0.001] * items}
    if url is not None:
        job["webhook"] = {"url": url}
    return job


def quarter_done(folder: Path, items: int) -> tuple[Serve, str]:
    """A server with two workers, and the id of its job of `items` once a quarter ran."""
    server = Serve(folder / "data", workers=2)
    job_id: str = server.http.post("/jobs", json=body(items)).json()["id"]
    until(
        lambda: server.job(job_id)["counts"]["succeeded"] >= items // 4,
        120,
        "a quarter of the items",
    )
    return server, job_id


def kill_tree(items: int) -> Outcome:
    with scratch() as folder:
        server, job_id = quarter_done(folder, items)
        server.kill()
        start = time.monotonic()  # the restart's own start-up counts too
        server = Serve(folder / "data", workers=2)
        try:
            server.ended(job_id, 180)
        finally:
            server.stop()
        seconds = time.monotonic() - start
    figure = f"restart → end {seconds:.1f} s"
    return Outcome(f"kill tree ({items} items)", figure, seconds <= 10, seconds)


def processes(server: Serve, names: tuple[str, ...]) -> set[psutil.Process]:
    """The server's processes named one of `names` (`fanout-worker`, `fanout-bg`)."""
    found = set()
    for process in psutil.Process(server.process.pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.name() in names:
                found.add(process)
    return found


def running(found: set[psutil.Process]) -> int:
    alive = 0
    for process in found:
        with contextlib.suppress(psutil.NoSuchProcess):
            alive += process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    return alive


def kill_forkserver(items: int) -> Outcome:
    with scratch() as folder:
        server, job_id = quarter_done(folder, items)
        # Forked by the forkserver: once it is gone they are nobody's children, so they are
        # followed from here by their ids.
        workers_before = processes(server, ("fanout-worker",))
        background = processes(server, ("fanout-bg",))
        for child in psutil.Process(server.process.pid).children():
            if "multiprocessing.forkserver" in " ".join(child.cmdline()):
                child.kill()
        start = time.monotonic()
        try:
            server.ended(job_id, 180)
            every_worker = workers_before | processes(server, ("fanout-worker",))
            workers = running(every_worker)
            background |= processes(server, ("fanout-bg",))
        finally:
            server.stop()
        seconds = time.monotonic() - start
        left = running(every_worker | background)
    figure = f"workers at the end {workers} (of 2), kill → end {seconds:.1f} s, left {left}"
    passed = workers == 2 and left == 0 and seconds <= 30
    return Outcome(f"kill forkserver ({items} items)", figure, passed, seconds)


def crash_at(point: str, items: int) -> Outcome:
    with scratch() as folder:
        marker = folder / "crashed"
        server = Serve(folder / "data", workers=2, env={"FANOUT_CRASH_AT": f"{point}:{marker}"})
        headers = {"idempotency-key": "chaos"}
        with contextlib.suppress(httpx.TransportError):
            server.http.post("/jobs", json=body(items), headers=headers)
        until(lambda: marker.exists() and marker.read_text(), 60, f"a crash at {point}")
        pid = int(marker.read_text())
        start = time.monotonic()
        if pid == server.process.pid:
            server.process.wait(30)
            server.stop()
            server = Serve(folder / "data", workers=2)
        try:
            response = server.http.post("/jobs", json=body(items), headers=headers)
            while response.status_code == 409 and time.monotonic() - start < 60:
                time.sleep(0.5)  # a client retrying a key whose request died
                response = server.http.post("/jobs", json=body(items), headers=headers)
            server.ended(response.json()["id"], 60)
        finally:
            server.stop()
        seconds = time.monotonic() - start
    return Outcome(f"crash at {point}", f"restart → end {seconds:.1f} s", seconds <= 30, seconds)


def full_disk(items: int) -> Outcome:
    if os.geteuid() != 0:
        return Outcome("full disk", "skipped: mounting a tmpfs needs root", True)
    with scratch() as folder:
        disk = folder / "disk"
        disk.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(disk)], check=True)
        try:
            return _full_disk(disk, items)
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)


def _full_disk(disk: Path, items: int) -> Outcome:
    server = Serve(disk / "data", workers=2)
    try:
        accepted = [server.http.post("/jobs", json=body(items)).json()["id"]]
        filler = disk / "filler"
        with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):
            for _ in range(1000):
                out.write(b"\0" * (256 * 1024))
        statuses = []
        for _ in range(30):
            response = server.http.post("/jobs", json=body(items))
            statuses.append(response.status_code)
            if response.status_code == 202:
                accepted.append(response.json()["id"])
            elif response.status_code != 503 or len(statuses) > 5:
                break
        filler.unlink()
        start = time.monotonic()
        for job_id in accepted:
            server.ended(job_id, 120)
        seconds = time.monotonic() - start
        errors = sum(status >= 500 and status != 503 for status in statuses)
        figure = f"503 {statuses.count(503)}, 5xx else {errors}; freed → all ended {seconds:.1f} s"
        return Outcome("full disk", figure, errors == 0 and 503 in statuses, seconds)
    finally:
        server.stop()


def twin_servers(jobs: int) -> Outcome:
    hooks = Hooks()
    with scratch() as folder:
        servers = [Serve(folder / "data", workers=1) for _ in range(2)]
        try:
            ids = [
                servers[i % 2].http.post("/jobs", json=body(1, hooks.url)).json()["id"]
                for i in range(jobs)
            ]
            until(
                lambda: all(servers[0].job(i)["webhook"]["status"] == "delivered" for i in ids),
                120,
                "every webhook",
            )
            time.sleep(1.0)  # a duplicate would come within the notifiers' next polls
        finally:
            for server in servers:
                server.stop()
            hooks.close()
    twice = len(hooks.ids) - len(set(hooks.ids))
    return Outcome(f"twin servers ({jobs} jobs)", f"webhooks sent twice {twice}", twice == 0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--items", type=int, default=20_000, help="items of the killed job")
    parser.add_argument("--jobs", type=int, default=60, help="jobs of the twin-server run")
    parser.add_argument("--json", action="store_true", help="print the outcomes as JSON")


def run(args: argparse.Namespace) -> int:
    campaign: list[Callable[[], Outcome]] = [
        lambda: kill_tree(args.items),
        lambda: kill_forkserver(args.items),
        *[lambda point=point: crash_at(point, min(args.items, 2000)) for point in POINTS],
        lambda: full_disk(min(args.items, 2000)),
        lambda: twin_servers(args.jobs),
    ]
    outcomes = []
    for fault in campaign:
        outcome = fault()
        outcomes.append(outcome)
        verdict = "pass" if outcome.passed else "FAIL"
        print(
            f"{outcome.fault:<28} | {outcome.figure:<52} | {verdict}", file=sys.stderr, flush=True
        )
    if args.json:
        print(json.dumps([asdict(o) for o in outcomes]))
    return 0 if all(o.passed for o in outcomes) else 1
