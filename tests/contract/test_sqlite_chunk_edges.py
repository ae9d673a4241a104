"""The SQLite chunk store beside other writers and on disk: a worker starts a delivered chunk
without waiting for the database's one writer (the queue marked it running as it delivered
it, so starting is a read), and a chunk's input leaves the file once the chunk is done or
bisected (README: only the inputs of chunks with failed items are kept, for a redrive).

The file's pages in use are read from the file itself, as `sqlite3_analyzer` or `du` after a
vacuum would see them: what a job leaves behind on the operator's disk.

Written to kill the mutants `python -m bench mutation` found surviving in
`fanout/backends/sqlite/chunks.py` (issue 13). SQLite only; in tests/contract/ because the
mutation run selects this folder already (changing its selection resets every mutmut verdict).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from fanout import task
from fanout.models import ChunkRef, Job, JobStatus, TenantId
from fanout.service import Fanout, JobRequest
from fanout.settings import Settings
from fanout.wiring import build

TENANT = TenantId("tenant-a")
MB = 1024 * 1024
BIG = 64 * 1024  # an item's size: 16 of them make a megabyte of input


@task(name="test_sqlite_chunk_edges_length")
def length(item: str) -> int:
    return len(item)


def submit(service: Fanout, items: list[Any], **options: Any) -> Job:
    request = JobRequest(task="test_sqlite_chunk_edges_length", items=items, params={}, **options)
    job, _ = service.submit(TENANT, request)
    return job


def in_use(path: Path) -> int:
    """Bytes of the database file holding data (its pages less the free ones), read by a
    connection of its own, WAL included."""
    with closing(sqlite3.connect(path)) as conn:
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        (size,) = conn.execute("PRAGMA page_size").fetchone()
    return int((pages - free) * size)


@contextmanager
def another_writer(path: Path) -> Iterator[None]:
    """A write transaction held open on the file, as another process's writer holds it."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")


def test_a_worker_starts_a_delivered_chunk_while_another_process_holds_the_write_lock(
    service: Fanout,
) -> None:
    """Starting must not queue behind the writer: a worker would otherwise wait out every
    submit and record of every other process (and fail after the 30 s busy timeout)."""
    job = submit(service, ["a", "bb", "ccc"])
    [delivery] = service.receive("worker")

    with another_writer(service.settings.database):
        items = service.backend.chunks.start_chunk(delivery.chunk, time.time())

    assert items == b'["a","bb","ccc"]'
    assert service.get(TENANT, job.id).status is JobStatus.RUNNING


def test_the_input_of_a_chunk_whose_items_all_succeeded_leaves_the_file(
    service: Fanout,
) -> None:
    items = ["x" * BIG] * 16
    job = submit(service, items, chunk_size=4)
    path = service.settings.database
    submitted = in_use(path)

    for _ in range(job.total + 1):
        deliveries = service.receive("worker")
        if not deliveries:
            break
        for delivery in deliveries:
            service.process(delivery)

    done = service.get(TENANT, job.id)
    assert (done.status, done.succeeded) == (JobStatus.SUCCEEDED, 16)
    assert in_use(path) < submitted - MB * 9 // 10  # the megabyte of input is gone


def test_a_bisected_chunk_s_input_leaves_the_file_its_halves_carry_it(
    settings: Settings,
) -> None:
    """A dead letter split in two: the halves hold the items now, the split chunk nothing (it
    never runs again, and a redrive never re-releases it)."""
    at_once = build(settings.model_copy(update={"visibility_timeout": 0.0}))
    job = submit(at_once, ["x" * (BIG // 8)] * 20, chunk_size=20)  # 160 kB: one chunk
    for _ in range(settings.max_receive_count + 1):
        if not at_once.receive("dying-worker"):
            break
    service = build(settings)
    [dead] = service.receive_dead_letters("bisector")
    assert dead.chunk == ChunkRef(job.id, 0, 20)
    before = in_use(settings.database)

    service.process_dead_letter(dead)

    # The halves' 160 kB came in and the split chunk's went: about even, never doubled.
    assert in_use(settings.database) - before < 80 * 1024
