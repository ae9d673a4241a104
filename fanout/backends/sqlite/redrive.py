"""Redriving an ended job on SQLite, in one transaction (the queue is in the same file).

What a redrive changes, so that the job then runs like a first run over the items left:
- each recorded chunk with failed items is cut into runs: its succeeded runs stay recorded (a
  result row each), its failed runs become new chunks, pending, with their inputs (a chunk
  with failures keeps its input for this; see `SqliteStore.record_chunk_result`);
- chunks that never recorded a result (a cancelled or timed-out job's) are pending again;
- the job's messages are deleted (the window releases afresh), its failed count goes to 0, its
  status to queued, its redrive count up by one; its previous completion event is dropped,
  delivered or not: the next end brings a new one, with a new id.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

from pydantic_core import from_json, to_json

from fanout.errors import JobNotFinished, JobNotFound, NothingToRedrive
from fanout.models import JobId, JobStatus

FAILED = re.compile(rb'\{"index":\d+,"status":"failed"')


def runs(lines: list[bytes]) -> Iterator[tuple[bool, int, int]]:
    """(failed?, first, stop) of each maximal run of outcomes alike, offsets into `lines`."""
    failed = [FAILED.match(line) is not None for line in lines]
    first = 0
    for offset in range(1, len(lines) + 1):
        if offset == len(lines) or failed[offset] != failed[first]:
            yield failed[first], first, offset
            first = offset


def redrive(conn: sqlite3.Connection, job_id: JobId, now: float) -> None:
    """Make the job's failed and never-run items pending again (see the module's docstring).
    Raises JobNotFound, JobNotFinished while it runs, NothingToRedrive if all succeeded."""
    row = conn.execute(
        "SELECT status, total, succeeded, options, deadline FROM jobs WHERE id = ?",
        (job_id,),
    ).fetchone()
    if row is None:
        raise JobNotFound(job_id)
    status, total, succeeded, options, deadline = row
    if not JobStatus(status).terminal:
        raise JobNotFinished(f"job {job_id} is {status}: redrive it once it has ended")
    if succeeded == total:
        raise NothingToRedrive(f"every item of job {job_id} succeeded")
    _cut_failed_chunks(conn, job_id)
    conn.execute(
        "UPDATE chunks SET state = 'pending' WHERE job_id = ? AND state NOT IN ('done', 'split')",
        (job_id,),
    )
    conn.execute("DELETE FROM messages WHERE job_id = ?", (job_id,))
    conn.execute("DELETE FROM outbox WHERE job_id = ?", (job_id,))
    timeout = from_json(options).get("timeout_seconds")
    conn.execute(
        "UPDATE jobs SET status = 'queued', failed = 0, finished_at = NULL, error = NULL,"
        " reduce_value = NULL, redrive_count = redrive_count + 1, updated_at = ?, deadline = ?"
        " WHERE id = ?",
        (now, now + timeout if timeout else deadline, job_id),
    )


def _cut_failed_chunks(conn: sqlite3.Connection, job_id: JobId) -> None:
    rows = conn.execute(
        'SELECT r.start, r."end", r.lines, c.items FROM results r LEFT JOIN chunks c'
        ' ON c.job_id = r.job_id AND c.start = r.start AND c."end" = r."end"'
        " WHERE r.job_id = ? AND instr(r.lines, ?) > 0",
        (job_id, b'"status":"failed"'),
    ).fetchall()
    for start, end, text, items in rows:
        lines = text.split(b"\n")
        if not any(FAILED.match(line) for line in lines):
            continue  # "failed" was in an output, not a status
        if items is None:
            raise NothingToRedrive(f"the inputs of items {start}-{end - 1} are gone (expired)")
        inputs = from_json(items)
        conn.execute("DELETE FROM results WHERE job_id = ? AND start = ?", (job_id, start))
        conn.execute(
            'DELETE FROM chunks WHERE job_id = ? AND start = ? AND "end" = ?', (job_id, start, end)
        )
        for failed, first, stop in runs(lines):
            if failed:
                conn.execute(
                    'INSERT INTO chunks (job_id, start, "end", state, items)'
                    " VALUES (?, ?, ?, 'pending', ?)",
                    (job_id, start + first, start + stop, to_json(inputs[first:stop])),
                )
            else:
                conn.execute(
                    'INSERT INTO results (job_id, start, "end", lines) VALUES (?, ?, ?, ?)',
                    (job_id, start + first, start + stop, b"\n".join(lines[first:stop])),
                )
