"""A chunk whose worker could neither record nor hand it back (the disk was full) runs again as
soon as the store can write, not after its visibility timeout. The data dir is on a real 20 MB
tmpfs (mounting it needs root, as CI runs); the task fills the disk while it runs, so recording
its result and handing the chunk back both fail with ENOSPC."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fanout import tasks
from fanout.errors import StoreUnavailable
from fanout.models import JobStatus, TenantId
from fanout.service import Fanout, JobRequest
from fanout.settings import Settings
from fanout.wiring import build
from fanout.workers import chunk_worker
from tests.contract.support import unavailable

TENANT = TenantId("tenant-a")
FILLER: list[Path] = []  # where the task fills the disk, the first time it runs (then popped)


@tasks.task(name="fill_the_disk_once")
def fill_the_disk_once(item: int) -> int:
    if FILLER:
        with FILLER.pop().open("wb", buffering=0) as out:
            for _ in range(1000):  # 250 MB at most: far more than the disk holds
                try:
                    out.write(b"\0" * (256 * 1024))
                except OSError as error:
                    assert error.errno == errno.ENOSPC
                    break
    return item * 3


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        unavailable("mounting a tmpfs (root)", PermissionError("not root"))
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        FILLER.clear()
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_chunk_that_could_not_be_handed_back_runs_once_the_disk_has_room(
    small_disk: Path,
) -> None:
    # A visibility timeout of an hour: were the chunk left to it, the job would not end here.
    service: Fanout = build(Settings(data_dir=small_disk / "data", visibility_timeout=3600.0))
    request = JobRequest(task="fill_the_disk_once", items=list(range(50)), params={}, chunk_size=50)
    job, _ = service.submit(TENANT, request)
    filler = small_disk / "filler"
    FILLER.append(filler)
    owed = chunk_worker.HandBacks()

    with pytest.raises(StoreUnavailable):
        chunk_worker.poll_once(service, "", owed)
    assert list(owed.owed), "the hand-back should have failed on the full disk"
    assert service.get(TENANT, job.id).status is JobStatus.RUNNING

    filler.unlink()
    for _ in range(10):
        if not chunk_worker.poll_once(service, "", owed):
            break
    ended = service.get(TENANT, job.id)
    assert ended.status is JobStatus.SUCCEEDED, ended
    assert (ended.succeeded, ended.failed) == (50, 0)
    assert not owed.owed
