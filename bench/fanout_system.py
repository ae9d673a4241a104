"""fanout as a benchmarked system: a fresh `fanout serve` on a free port and a temp data dir."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import httpx
import psutil
from pydantic_core import to_json
from standardwebhooks import Webhook

from bench.rss import process_tree
from bench.system import NOOP, BenchError, Run, RunTimedOut, Workload
from bench.webhook import WebhookReceiver

STARTUP_SECONDS = 30.0
SHUTDOWN_SECONDS = 15.0
POLL_SECONDS = 0.05
NDJSON_PIECE = 1 << 20


def free_port() -> int:
    """A port free now, for a peer's server told which port to bind (redis): another process
    may take it first, so its caller tries another port when that happens. `fanout serve` binds
    port 0 and says which port it got (`on_port_0`); the bare uvicorn app is handed a bound
    socket."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def on_port_0(port_file: Path) -> list[str]:
    """`fanout serve`'s options to listen on a port the system picks and write it down."""
    return ["--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file)]


def bound_port(process: subprocess.Popen[bytes], port_file: Path, deadline: float) -> int:
    """The port a `fanout serve` started with `on_port_0(port_file)` listens on, once written
    (whole: the server renames it into place)."""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"fanout serve exited with {process.returncode} before listening")
        with contextlib.suppress(FileNotFoundError):
            return int(port_file.read_text())
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(POLL_SECONDS)
    raise BenchError(f"fanout serve did not write {port_file} in time")


def serve_command() -> list[str]:
    """The `fanout` console script of this interpreter's environment, or its equivalent."""
    script = Path(sys.executable).with_name("fanout")
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-c", "from fanout.cli import app; app()", "serve"]


class FanoutSystem:
    """POSTs `{"task": "echo", "items": [0..N-1], "webhook": ...}` (or another workload's task,
    items and params) and times it to the webhook."""

    name = "fanout"

    def __init__(
        self,
        workers: int | None = None,
        chunk_size: int | None = None,
        body: str = "json",
        env: dict[str, str] | None = None,
    ) -> None:
        self.workers = workers
        self.env = env or {}  # settings of this server (FANOUT_*), over the defaults
        self.chunk_size = chunk_size
        # "json": the job as one JSON object; "ndjson": the items one a line, the rest in the
        # query, streamed in 1 MiB pieces as a client uploading a file would.
        self.body = body
        self.process: subprocess.Popen[bytes] | None = None
        self.receiver: WebhookReceiver | None = None
        self.client: httpx.Client | None = None
        self.data_dir: Path | None = None
        self.log: IO[bytes] | None = None
        self.last_job_id = ""  # the job of the latest run, for benchmarks that read it back

    def start(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="fanout-bench-"))
        self.receiver = WebhookReceiver()
        self.receiver.start()
        port_file = self.data_dir / "serve.port"
        command = [
            *serve_command(),
            *on_port_0(port_file),
            "--data-dir",
            str(self.data_dir / "data"),
        ]
        if self.workers is not None:
            command += ["--workers", str(self.workers)]
        # No API keys: one tenant on loopback, which is what the benchmark talks to.
        env = {k: v for k, v in os.environ.items() if k not in ("FANOUT_API_KEYS", "FANOUT_HOST")}
        env["FANOUT_WEBHOOK_ALLOW_NETWORKS"] = "127.0.0.0/8"
        env.update(self.env)
        self.log = (self.data_dir / "serve.log").open("wb")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + STARTUP_SECONDS
        port = bound_port(self.process, port_file, deadline)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120.0)
        self._wait_healthy(deadline)

    def _wait_healthy(self, deadline: float) -> None:
        assert self.process is not None and self.client is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"fanout serve exited with {self.process.returncode}: {self._log()}"
                )
            try:
                if self.client.get("/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            # Not listening yet: give it a moment, noticing at once if it exits.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(POLL_SECONDS)
        raise BenchError(f"fanout serve was not healthy within {STARTUP_SECONDS} s: {self._log()}")

    def _log(self) -> str:
        if self.data_dir is None:
            return ""
        return (self.data_dir / "serve.log").read_text(errors="replace")[-2000:]

    @property
    def api_pid(self) -> int | None:
        """`fanout serve`'s own process, where uvicorn serves the API."""
        return None if self.process is None else self.process.pid

    def root_pids(self) -> list[int]:
        return [] if self.process is None else [self.process.pid]

    def run(self, items: int, deadline: float, workload: Workload = NOOP) -> Run:
        assert self.client is not None and self.receiver is not None
        request: dict[str, Any] = {
            "task": workload.task,
            "items": workload.items(items),
            "webhook": {"url": self.receiver.url},
        }
        if workload.params:
            request["params"] = workload.params
        if self.chunk_size is not None:
            request["chunk_size"] = self.chunk_size
        content, query, headers = self._encoded(request)
        wall, started = time.time(), time.perf_counter()
        response = self.client.post("/jobs", content=content, params=query, headers=headers)
        accepted = time.perf_counter() - started
        if response.status_code != 202:
            raise BenchError(f"POST /jobs answered {response.status_code}: {response.text[:500]}")
        job = response.json()
        self.last_job_id = job["id"]
        received = self.receiver.wait(job["id"], deadline)
        if received is None:
            # Cancel it, so that its remaining chunks do not run on into the next run.
            self.client.post(f"/jobs/{job['id']}/cancel")
            raise RunTimedOut(f"no webhook for job {job['id']} before the deadline")
        seconds = received.at - started
        final = self._verify(items, job, received.headers, received.body)
        milestones = {
            "accepted": accepted,
            "started": _since(final["started_at"], wall),
            "finished": _since(final["finished_at"], wall),
            "webhook": seconds,
        }
        return Run(items, seconds, items, 0, milestones)

    def _encoded(
        self, request: dict[str, Any]
    ) -> tuple[bytes | Iterator[bytes], dict[str, str], dict[str, str]]:
        """The request as the body, query and headers of the chosen kind (built before the
        clock starts; an NDJSON body is handed out in pieces as it is sent)."""
        if self.body == "json":
            return to_json(request), {}, {"content-type": "application/json"}
        items = request.pop("items")
        lines = b"\n".join(to_json(item) for item in items) + b"\n"
        query = {"task": request.pop("task"), "webhook_url": request.pop("webhook")["url"]}
        query |= {name: json.dumps(value) for name, value in request.items()}
        pieces = [lines[i : i + NDJSON_PIECE] for i in range(0, len(lines), NDJSON_PIECE)]
        return iter(pieces), query, {"content-type": "application/x-ndjson"}

    def _verify(
        self, items: int, job: dict[str, Any], headers: dict[str, str], body: bytes
    ) -> dict[str, Any]:
        """The webhook is genuine (its signature checks with the job's secret) and reports every
        item succeeded, as the job itself does. Returns the job as GET /jobs/{id} shows it."""
        assert self.client is not None
        Webhook(job["webhook"]["secret"]).verify(body, {k.lower(): v for k, v in headers.items()})
        event = json.loads(body)
        final: dict[str, Any] = self.client.get(f"/jobs/{job['id']}").json()
        expected = {"total": items, "succeeded": items, "failed": 0, "pending": 0, "running": 0}
        for name, view in (("webhook", event["data"]), ("GET /jobs/{id}", final)):
            counts = {key: view["counts"][key] for key in expected}
            if event["type"] != "job.succeeded" or view["status"] != "succeeded":
                raise BenchError(f"{name}: job {job['id']} ended {view['status']}: {view['error']}")
            if counts != expected:
                raise BenchError(f"{name}: job {job['id']} counts {counts}, expected {expected}")
        return final

    def stop(self) -> None:
        """SIGINT (as Ctrl-C) and wait; then SIGKILL whatever is left of the server's tree."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.process is not None:
            stop_tree(self.process)
            self.process = None
        if self.receiver is not None:
            self.receiver.stop()
            self.receiver = None
        if self.log is not None:
            self.log.close()
            self.log = None
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None


def _since(timestamp: str, wall: float) -> float:
    """Seconds from `wall` (time.time()) to an RFC 3339 timestamp of the job."""
    return datetime.fromisoformat(timestamp).timestamp() - wall


def stop_tree(
    process: subprocess.Popen[bytes],
    signum: signal.Signals = signal.SIGINT,
    grace: float = SHUTDOWN_SECONDS,
) -> None:
    """Send `signum` (fanout serve: SIGINT, whose clean shutdown stops the workers), then
    SIGKILL whatever of the tree it had when asked is still running after `grace` seconds."""
    tree = process_tree([process.pid])
    if process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    alive = _running(tree, time.monotonic() + grace)
    for leftover in alive:
        with contextlib.suppress(psutil.Error):
            leftover.kill()
    _running(alive, time.monotonic() + SHUTDOWN_SECONDS)


def _running(processes: list[psutil.Process], deadline: float) -> list[psutil.Process]:
    """Those of `processes` still running at `deadline`; returns early once none is. A zombie
    has stopped: orphans are reaped by whoever is PID 1, which in a container may be nobody."""

    def running(process: psutil.Process) -> bool:
        try:
            return bool(process.status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return False

    alive = [p for p in processes if running(p)]
    while alive and time.monotonic() < deadline:
        psutil.wait_procs(alive, timeout=POLL_SECONDS)
        alive = [p for p in alive if running(p)]
    return alive
