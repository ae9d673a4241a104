"""A process killed between two steps of submit, record/count and finalize: after the restart,
every job ends within 30 s, with one outcome per item and one webhook, and the keyed POST that
was cut short succeeds when retried.

Each test kills the process that reaches a named point (`fanout.crashpoints`: SIGKILL, once,
proved by its marker file), restarts what died, and retries the POST with its Idempotency-Key
as a client would until it is answered (409 while the dead request's key lease runs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.aws import moto
from tests.contract.support import BackendUnavailable, unavailable
from tests.e2e.harness import (
    REPO,
    Launcher,
    Process,
    Receiver,
    Server,
    all_succeeded,
    the_one_webhook,
)
from tests.waiting import wait_until

TOTAL = 120
RESTART_TO_END = 30.0  # the bound: every job ends within 30 s of the restart
KEY = "crash-test-key"


def job_body(receiver: Receiver) -> dict[str, Any]:
    return {
        "task": "pause_then_triple",
        "items": list(range(TOTAL)),
        "params": {"pause": 0.002},
        "chunk_size": 6,
        "max_concurrency": 3,
        "webhook": {"url": receiver.url},
    }


def crashed(marker: Path, point: str) -> int:
    """Wait for the point to fire and its process to be gone; returns that process's pid."""
    written = wait_until(lambda: marker.exists() and marker.read_text(), 60, f"a crash at {point}")
    pid = int(str(written))
    wait_until(lambda: not psutil.pid_exists(pid) or _zombie(pid), 30, f"process {pid} to die")
    return pid


def _zombie(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def post_once(server: Server, body: dict[str, Any]) -> httpx.Response | None:
    """The keyed POST; None if the server died before answering."""
    try:
        return server.client.post("/jobs", json=body, headers={"idempotency-key": KEY})
    except httpx.TransportError:
        return None


def accepted(server: Server, body: dict[str, Any], until: float) -> dict[str, Any]:
    """Retry the keyed POST as a client would until it is accepted (a 409 means the key's
    request may still run: wait and retry), failing at `until` (monotonic)."""

    def answer() -> dict[str, Any] | None:
        response = post_once(server, body)
        if response is None or response.status_code == 409:
            time.sleep(0.2)  # a client's pause between retries, not a synchronisation
            return None
        assert response.status_code == 202, response.text
        job: dict[str, Any] = response.json()
        return job

    return wait_until(answer, max(1.0, until - time.monotonic()), "the retried POST", every=0)


def check_finished(server: Server, receiver: Receiver, job: dict[str, Any], until: float) -> None:
    final = server.wait_for_job(job["id"], timeout=max(1.0, until - time.monotonic()))
    assert final["status"] == "succeeded", final["error"]
    assert final["counts"] == all_succeeded(TOTAL)
    results = server.results(job["id"])
    assert results == [{"index": i, "status": "succeeded", "output": 3 * i} for i in range(TOTAL)]
    assert [j["id"] for j in server.client.get("/jobs").json()["items"]] == [job["id"]]
    the_one_webhook(server, receiver, job["id"], job["webhook"]["secret"])


@pytest.mark.parametrize(
    "point",
    ["submit.stored", "submit.keyed", "record.stored", "finalize.output", "finalize.claimed"],
)
def test_a_crash_at_each_step_leaves_no_job_stalled_after_the_restart(
    fanout: Launcher, receiver: Receiver, tmp_path: Path, point: str
) -> None:
    marker = tmp_path / f"crashed-at-{point}"
    server = fanout.serve(workers=2, env={"FANOUT_CRASH_AT": f"{point}:{marker}"})
    body = job_body(receiver)
    first = post_once(server, body)

    if crashed(marker, point) == server.process.popen.pid:
        # The API's process: start it again, as an operator would (its workers exit alone).
        server = fanout.serve(workers=2, data_dir=server.data_dir)
    restarted = time.monotonic()
    until = restarted + RESTART_TO_END

    job = accepted(server, body, until)
    if first is not None and first.status_code == 202:
        assert job == first.json(), "the retry replays the first response"
    check_finished(server, receiver, job, until)


# -- the AWS backend: `fanout serve --backend aws` beside `fanout worker --backend aws` ----------


def aws_environment(fanout: Launcher, tmp_path: Path) -> dict[str, str]:
    """Fresh resources on the moto server, made by `fanout aws bootstrap` as an operator would."""
    try:
        endpoint = moto.endpoint()
    except BackendUnavailable as error:
        unavailable("the aws backend", error)
    table = f"crash-{os.getpid()}-{tmp_path.name}"[:60]
    environment = fanout.env(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": moto.REGION,
            "FANOUT_TABLE": table,
            "FANOUT_BUCKET": table,
            "FANOUT_BACKEND": "aws",
        }
    )
    made = subprocess.run(
        [sys.executable, "-m", "fanout", "aws", "bootstrap"],
        env=environment,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {**environment, **dict(line.split("=", 1) for line in made.stdout.splitlines())}


@pytest.mark.parametrize(
    "point", ["submit.stored", "aggregate.counted", "finalize.output", "finalize.claimed"]
)
def test_a_crash_at_each_step_on_aws_leaves_no_job_stalled_after_the_restart(
    fanout: Launcher, receiver: Receiver, tmp_path: Path, point: str
) -> None:
    environment = aws_environment(fanout, tmp_path)
    marker = tmp_path / f"crashed-at-{point}"
    crashing = {**environment, "FANOUT_CRASH_AT": f"{point}:{marker}"}
    server = fanout.serve(workers=1, env=crashing)
    worker: Process = fanout.worker(tmp_path / "unused", workers=1, env=crashing)
    body = job_body(receiver)
    post_once(server, body)

    pid = crashed(marker, point)
    if pid == server.process.popen.pid:
        server = fanout.serve(workers=1, data_dir=server.data_dir, env=environment)
    if pid == worker.popen.pid:
        worker = fanout.worker(tmp_path / "unused", workers=1, env=environment)
    restarted = time.monotonic()
    until = restarted + RESTART_TO_END

    check_finished(server, receiver, accepted(server, body, until), until)
    assert worker.running()
