"""The real processes under test and what the tests check them with.

`fanout serve` and `fanout worker` run as subprocesses (`python -m fanout`) on a fresh data
directory; `serve` binds port 0 and writes the port the system gave it to a file the harness
reads, so no other process can take the port between a guess and the bind. A real HTTP server
on 127.0.0.1 receives their webhooks. Stopping a
process checks that it took its worker processes and forkserver with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from standardwebhooks import Webhook

from fanout.workers.local import BACKGROUND_NAME, WORKER_NAME
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
USER_TASKS = "tests.e2e.usertasks"
TERMINAL = {"succeeded", "failed", "cancelled"}
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
# How long to watch for a duplicate webhook after the first one.
QUIET = 1.0


def all_succeeded(total: int) -> dict[str, int]:
    """The counts of a job whose `total` items all succeeded."""
    return {
        "total": total,
        "succeeded": total,
        "failed": 0,
        "pending": 0,
        "running": 0,
        "cancelled": 0,
    }


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _kill(processes: list[psutil.Process]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


class Process:
    """A `fanout` command running as a child process in its own session, so that only the
    signals a test sends reach it; its output goes to a log file."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        log: Path,
        program: list[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                [*(program or [sys.executable, "-m", "fanout"]), *args],
                cwd=cwd or log.parent,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def running(self) -> bool:
        return self.popen.poll() is None

    def descendants(self) -> list[psutil.Process]:
        try:
            children: list[psutil.Process] = psutil.Process(self.popen.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return children

    def workers(self) -> list[psutil.Process]:
        """The worker processes (forked by the forkserver the supervisor started, each named
        `fanout-worker` once it runs)."""
        return self._named(WORKER_NAME)

    def background(self) -> list[psutil.Process]:
        """`fanout serve`'s background process (notifier, reconciler, sweeps): the forkserver's
        child named `fanout-bg`."""
        return self._named(BACKGROUND_NAME)

    def _named(self, name: str) -> list[psutil.Process]:
        found: list[psutil.Process] = []
        for child in self.descendants():
            try:
                if child.name() == name and _alive(child):
                    found.append(child)
            except psutil.NoSuchProcess:
                continue
        return found

    def bound_port(self, port_file: Path) -> int:
        """The port a `fanout serve --port 0 --port-file PORT_FILE` listens on, once written."""

        def written() -> int | None:
            if not self.running():
                pytest.fail(f"{self.name} exited with {self.popen.returncode}:\n{self.output()}")
            with contextlib.suppress(FileNotFoundError):
                return int(port_file.read_text())
            return None

        return wait_until(written, START_TIMEOUT, f"{self.name} to write its port to {port_file}")

    def stop(self, signum: signal.Signals = signal.SIGINT) -> int:
        """Stop as an operator would and return the exit code; fail if the process does not
        exit in time or leaves any process it started running."""
        if not self.running():
            return self.popen.wait()
        tree = self.descendants()
        self.popen.send_signal(signum)
        try:
            code = self.popen.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.name} did not exit within {STOP_TIMEOUT} s of {signum.name}")
        deadline = time.monotonic() + STOP_TIMEOUT
        while (left := [p for p in tree if _alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.05)
        if left:
            _kill(left)
            pytest.fail(
                f"{self.name} exited on {signum.name} but left processes running:"
                f" {[p.pid for p in left]}"
            )
        return code

    def kill(self) -> None:
        tree = self.descendants()
        self.popen.kill()
        self.popen.wait()
        _kill(tree)


class Server:
    """A running `fanout serve` and an HTTP client for it."""

    def __init__(self, process: Process, url: str, data_dir: Path) -> None:
        self.process = process
        self.url = url
        self.data_dir = data_dir
        self.client = httpx.Client(base_url=url, timeout=30.0)

    def wait_healthy(self) -> None:
        def healthy() -> bool:
            if not self.process.running():
                pytest.fail(f"{self.process.name} exited with {self.process.popen.returncode}")
            try:
                return self.client.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, START_TIMEOUT, f"{self.process.name} to answer /healthz")

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post("/jobs", json=body)
        assert response.status_code == 202, response.text
        job: dict[str, Any] = response.json()
        assert response.headers["location"] == f"/jobs/{job['id']}"
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        if not self.process.running():
            pytest.fail(f"{self.process.name} exited with {self.process.popen.returncode}")
        response = self.client.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        return job

    def wait_for_job(self, job_id: str, timeout: float) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if job["status"] in TERMINAL else None

        return wait_until(finished, timeout, f"job {job_id} to end", every=0.1)

    def page(self, job_id: str, cursor: int, limit: int) -> list[dict[str, Any]]:
        params = {"cursor": cursor, "limit": limit}
        response = self.client.get(f"/jobs/{job_id}/results", params=params)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def results(self, job_id: str) -> list[dict[str, Any]]:
        """Every outcome, streamed as JSON Lines."""
        headers = {"accept": "application/x-ndjson"}
        with self.client.stream("GET", f"/jobs/{job_id}/results", headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/x-ndjson")
            return [json.loads(line) for line in response.iter_lines() if line]

    def stop(self, signum: signal.Signals = signal.SIGINT) -> int:
        self.client.close()
        return self.process.stop(signum)


class Launcher:
    """Starts `fanout serve` and `fanout worker` processes for one test and stops them after."""

    def __init__(self, tmp_path: Path, started: list[Process]) -> None:
        self.tmp_path = tmp_path
        self.started = started
        self.servers: list[Server] = []

    def close(self) -> None:
        """Stop whatever the test left running, newest first; kill what will not stop."""
        for server in self.servers:
            server.client.close()
        try:
            for process in reversed(self.started):
                process.stop()
        finally:
            for process in self.started:
                if process.running():
                    process.kill()

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        # Nothing from the developer's own FANOUT_* settings leaks into the processes under test.
        env = {k: v for k, v in os.environ.items() if not k.startswith("FANOUT_")}
        path = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
        env.update(
            PYTHONPATH=os.pathsep.join(path),
            PYTHONUNBUFFERED="1",
            FANOUT_TASKS=USER_TASKS,
            FANOUT_WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8",
            FANOUT_WEBHOOK_BACKOFF_BASE="0.2",
            FANOUT_WEBHOOK_BACKOFF_MAX="1",
        )
        env.update(extra)
        return env

    def _start(self, name: str, args: list[str], env: dict[str, str] | None, **how: Any) -> Process:
        process = Process(name, args, self.env(env or {}), self.file(name, "log"), **how)
        self.started.append(process)
        return process

    def file(self, name: str, suffix: str) -> Path:
        """A file of the next process to start, e.g. its log or its port file."""
        return self.tmp_path / f"{len(self.started)}-{name.replace(' ', '-')}.{suffix}"

    def serve(
        self,
        workers: int = 2,
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
        options: tuple[str, ...] = (),
        **how: Any,
    ) -> Server:
        """`options` go after the harness's own; `how`: `program` (the command, `python -m
        fanout` by default) and `cwd`."""
        data_dir = data_dir or self.tmp_path / "data"
        port_file = self.file("fanout serve", "port")
        args = ["serve", "--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file)]
        args += ["--workers", str(workers), "--data-dir", str(data_dir), *options]
        process = self._start("fanout serve", args, env, **how)
        server = Server(process, f"http://127.0.0.1:{process.bound_port(port_file)}", data_dir)
        self.servers.append(server)
        server.wait_healthy()
        return server

    def command(self, args: list[str], env: dict[str, str] | None = None) -> Process:
        """Any other long-running `fanout` command (e.g. `aws emulator`)."""
        return self._start(" ".join(["fanout", *args[:2]]), args, env)

    def worker(
        self, data_dir: Path, workers: int = 1, env: dict[str, str] | None = None
    ) -> Process:
        args = ["worker", "--workers", str(workers), "--data-dir", str(data_dir)]
        return self._start("fanout worker", args, env)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Receives webhooks on 127.0.0.1: records each POST and answers the statuses queued in
    `answers` in turn, then 204."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.answers: list[int] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {key.lower(): value for key, value in self.headers.items()}
                status = receiver.record(Received(self.path, headers, body))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reports what was received."""

        return Handler

    def record(self, received: Received) -> int:
        with self.lock:
            self.received.append(received)
            return self.answers.pop(0) if self.answers else 204

    def deliveries(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        def arrived() -> list[Received] | None:
            received = self.deliveries()
            return received if len(received) >= count else None

        return wait_until(arrived, timeout, f"{count} webhook deliveries")


def verified(received: Received, secret: str) -> dict[str, Any]:
    """The payload, once its Standard Webhooks signature checks out with the job's secret."""
    payload: dict[str, Any] = Webhook(secret).verify(received.body, received.headers)
    return payload


def the_one_webhook(
    server: Server, receiver: Receiver, job_id: str, secret: str, timeout: float = 30.0
) -> dict[str, Any]:
    """Wait for the job's completion webhook, check its signature and id, and check that no
    second one follows once the outbox has recorded the delivery. Returns the payload."""
    first = receiver.wait_for(1, timeout)[0]
    assert (first.path, first.headers["content-type"]) == ("/hook", "application/json")
    payload = verified(first, secret)

    def delivered() -> dict[str, Any] | None:
        job = server.job(job_id)
        return job if job["webhook"]["status"] == "delivered" else None

    job = wait_until(delivered, timeout, f"job {job_id}'s webhook to be recorded as delivered")
    assert first.headers["webhook-id"] == job["webhook"]["event_id"]
    assert [a["status_code"] for a in job["webhook"]["attempts"]] == [204]
    # Asserting an absence needs a bounded wait: the notifier polls the outbox every 50 ms.
    deadline = time.monotonic() + QUIET
    while time.monotonic() < deadline:
        assert len(receiver.deliveries()) == 1, "a second webhook was delivered"
        time.sleep(0.05)
    return payload
