"""Storing a new job: its row, its chunks and the messages of its first window, in the write
transaction of whichever thread has the turn (`group.GroupWriter.run`).

Submits arriving together are stored together (`Creation.together`): for all of them, one look
for taken ids and one statement per table (`inserts.insert_rows`), where each alone took a
savepoint and four statements. Everything a creation needs is made before it is queued, so the
transaction holds only the statements.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fanout.backends.sqlite.inserts import MAX_PARAMETERS, insert_rows
from fanout.backends.sqlite.queue import enqueue
from fanout.errors import JobExists
from fanout.models import ChunkRef

JOBS = (
    "jobs (id, tenant, task, status, params, options, max_concurrency, webhook_url,"
    " webhook_secret, total, created_at, deadline, updated_at)"
)
JOB_ROW = "(?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)"
CHUNKS = 'chunks (job_id, start, "end", state, items)'
CHUNK_ROW = "(?, ?, ?, ?, ?)"


@dataclass(frozen=True)
class Creation:
    job_id: str
    job_row: tuple[Any, ...]
    chunk_rows: list[tuple[Any, ...]]
    released: list[ChunkRef]

    def __call__(self, conn: sqlite3.Connection) -> None:
        """Store this job alone; JobExists if its id is taken."""
        (outcome,) = Creation.together(conn, [self])
        if outcome is not None:
            raise outcome

    @staticmethod
    def together(conn: sqlite3.Connection, creations: Sequence[Creation]) -> list[JobExists | None]:
        """Store every job of `creations` whose id is free: None for each stored, JobExists for
        each whose id was taken (by a stored job, or by one before it here)."""
        ids = [creation.job_id for creation in creations]
        taken = set[str]()
        for at in range(0, len(ids), MAX_PARAMETERS):
            some = ids[at : at + MAX_PARAMETERS]
            marks = ", ".join("?" * len(some))
            taken.update(
                i for (i,) in conn.execute(f"SELECT id FROM jobs WHERE id IN ({marks})", some)
            )
        outcomes: list[JobExists | None] = []
        stored: list[Creation] = []
        for creation in creations:
            if creation.job_id in taken:
                outcomes.append(JobExists(creation.job_id))
                continue
            taken.add(creation.job_id)
            stored.append(creation)
            outcomes.append(None)
        insert_rows(conn, JOBS, JOB_ROW, [creation.job_row for creation in stored])
        insert_rows(conn, CHUNKS, CHUNK_ROW, [row for each in stored for row in each.chunk_rows])
        enqueue(conn, [chunk for creation in stored for chunk in creation.released])
        return outcomes
