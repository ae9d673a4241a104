"""The data directory on a real full filesystem (a 20 MB tmpfs the test mounts, as root): while
the store cannot write, `POST /jobs` answers 503 with `Retry-After` and stores nothing, `/readyz`
says not ready, and no process or thread dies; once space returns, processing resumes by itself
and every accepted job finishes, without waiting out a chunk's visibility timeout."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Launcher, Server, all_succeeded
from tests.waiting import wait_until

PROBLEM = "application/problem+json"
ITEMS = 300


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> None:
    """Write until the filesystem refuses: ENOSPC."""
    block = b"\0" * (256 * 1024)
    with path.open("wb", buffering=0) as out:
        for _ in range(1000):  # 250 MB at most: far more than the disk holds
            try:
                out.write(block)
            except OSError as error:
                assert error.errno == errno.ENOSPC
                return
    pytest.fail("the disk never filled")


def body(n: int) -> dict[str, Any]:
    return {
        "task": "pause_then_triple",
        "items": list(range(ITEMS)),
        "params": {"pause": 0.001, "n": n},
        "chunk_size": 10,
    }


def post(server: Server, n: int) -> httpx.Response:
    return server.client.post("/jobs", json=body(n))


def test_a_full_disk_answers_503_stores_nothing_half_and_every_accepted_job_finishes_after(
    fanout: Launcher, small_disk: Path
) -> None:
    # A chunk whose worker could not hand it back on the full disk must run once space returns,
    # not after its visibility timeout: made ten minutes here, far past the deadlines below.
    server = fanout.serve(
        workers=2, data_dir=small_disk / "data", env={"FANOUT_VISIBILITY_TIMEOUT": "600"}
    )
    accepted = [server.submit(body(n)) for n in range(3)]
    assert server.client.get("/readyz").status_code == 200

    filler = small_disk / "filler"
    fill(filler)
    statuses: list[int] = []
    for n in range(3, 60):  # the WAL may hold a few more writes before one needs new space
        response = post(server, n)
        statuses.append(response.status_code)
        if response.status_code == 202:
            accepted.append(response.json())
            continue
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == PROBLEM
        assert int(response.headers["retry-after"]) > 0
        break
    assert statuses[-1] == 503, statuses
    not_ready = server.client.get("/readyz")
    assert (not_ready.status_code, not_ready.headers["content-type"]) == (503, PROBLEM)
    assert server.process.running()
    assert len(server.process.workers()) == 2

    filler.unlink()
    wait_until(lambda: server.client.get("/readyz").status_code == 200, 30, "/readyz to say ready")
    accepted.append(server.submit(body(99)))
    for job in accepted:
        final = server.wait_for_job(job["id"], timeout=60)
        assert final["counts"] == all_succeeded(ITEMS), final
    listed = {
        job["id"] for job in server.client.get("/jobs", params={"limit": 100}).json()["items"]
    }
    assert listed == {job["id"] for job in accepted}  # nothing half-created by a refused POST
    ready = server.client.get("/readyz").json()
    assert ready["backlog"] == {"unstarted_chunks": 0, "undelivered_webhooks": 0}
    with contextlib.suppress(FileNotFoundError):
        filler.unlink()
