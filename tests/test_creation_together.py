"""Jobs submitted together are stored together (`fanout.backends.sqlite.creation`): the
creations queued while another thread has the write turn are stored in one go (one savepoint,
one look for taken ids, one statement per table), each job whole (its row, its chunks, its first
window's messages in order), and a taken id is refused to its own submit alone. On a real SQLite
file, with the writer's statements counted by SQLite's trace callback."""

from __future__ import annotations

import functools
import sqlite3
from collections import Counter
from pathlib import Path

from fanout.backends.sqlite import Database
from fanout.backends.sqlite.inserts import insert_rows
from fanout.backends.sqlite.jobs import SqliteJobStore
from fanout.errors import JobExists
from fanout.models import ChunkInput, NewJob
from tests.contract.support import new_job
from tests.test_group_commit import queued_while_held

SUBMITS = 6


def traced(db: Database) -> Counter[str]:
    """The statements the writer's connection runs from now on, by their first three words."""
    seen: Counter[str] = Counter()
    db._group._connection().set_trace_callback(lambda sql: seen.update([" ".join(sql.split()[:3])]))
    return seen


def create_queued_together(
    db: Database, store: SqliteJobStore, jobs: list[tuple[NewJob, list[ChunkInput]]]
) -> dict[str, BaseException | None]:
    """Each job's `create_job` on a thread of its own, all queued while this thread holds the
    write turn, then let go: what each raised (None when stored)."""
    outcomes: dict[str, BaseException | None] = {}

    def create(job: NewJob, chunks: list[ChunkInput]) -> None:
        try:
            store.create_job(job, chunks)
            outcomes[job.id] = None
        except BaseException as error:  # looked at by the test
            outcomes[job.id] = error

    queued_while_held(db._group, [functools.partial(create, *pair) for pair in jobs])
    return outcomes


def chunk_rows(db: Database, job_id: str) -> list[tuple[int, int, str, bytes]]:
    rows = db.connection().execute(
        'SELECT start, "end", state, items FROM chunks WHERE job_id = ? ORDER BY start', (job_id,)
    )
    return [tuple(row) for row in rows]


def messages(db: Database) -> list[tuple[str, int, int]]:
    rows = db.connection().execute('SELECT job_id, start, "end" FROM messages ORDER BY id')
    return [(job_id, start, end) for job_id, start, end in rows]


def test_submits_queued_together_are_stored_whole_in_one_go(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "fanout.db")
    store = SqliteJobStore(db)
    jobs = [new_job(total=2 + n, chunk_size=1, max_concurrency=2) for n in range(SUBMITS)]
    seen = traced(db)

    outcomes = create_queued_together(db, store, jobs)

    assert outcomes == {job.id: None for job, _ in jobs}
    # One savepoint and one look for taken ids for the six (alone: one of each per job).
    assert seen["SAVEPOINT member"] == 1
    assert seen["SELECT id FROM"] == 1
    assert seen["COMMIT"] == 2  # the holder's write, then the six creations together
    for job, chunks in jobs:
        stored = store.get_job(job.id)
        assert stored is not None and stored.total == job.total
        assert chunk_rows(db, job.id) == [
            (c.start, c.end, "released" if i < 2 else "pending", c.items_json)
            for i, c in enumerate(chunks)
        ]
    # Each job's first window (2 chunks), in the order the creations were queued in.
    queued = {job_id for job_id, _, _ in messages(db)}
    assert queued == {job.id for job, _ in jobs}
    for job, _ in jobs:
        assert [m[1:] for m in messages(db) if m[0] == job.id] == [(0, 1), (1, 2)]


def test_a_taken_id_among_submits_stored_together_is_refused_to_its_own_submit_alone(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "fanout.db")
    store = SqliteJobStore(db)
    taken, taken_chunks = new_job(total=3)
    store.create_job(taken, taken_chunks)
    others = [new_job(total=4) for _ in range(SUBMITS - 1)]

    outcomes = create_queued_together(db, store, [others[0], (taken, taken_chunks), *others[1:]])

    refused = outcomes.pop(taken.id)
    assert isinstance(refused, JobExists) and taken.id in str(refused)
    assert outcomes == {job.id: None for job, _ in others}
    assert all(store.get_job(job.id) is not None for job, _ in others)
    # The taken id's job is the first one, with its window queued once.
    assert [m for m in messages(db) if m[0] == taken.id] == [(taken.id, 0, 2), (taken.id, 2, 3)]


def test_one_id_twice_among_submits_stored_together_is_stored_once(tmp_path: Path) -> None:
    db = Database(tmp_path / "fanout.db")
    store = SqliteJobStore(db)
    job, chunks = new_job(total=4)
    outcomes: list[str] = []

    def create() -> None:
        try:
            store.create_job(job, chunks)
            outcomes.append("stored")
        except JobExists:
            outcomes.append("refused")

    queued_while_held(db._group, [create, create])

    assert sorted(outcomes) == ["refused", "stored"]
    assert len([m for m in messages(db) if m[0] == job.id]) == 2  # one window, not two


def test_more_rows_than_one_statement_may_bind_are_all_inserted_in_order(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "rows.db", isolation_level=None)
    conn.execute("CREATE TABLE t (n INTEGER, a TEXT, b TEXT, c TEXT)")
    rows = [(n, f"a{n}", f"b{n}", "c") for n in range(700)]
    statements: list[str] = []
    conn.set_trace_callback(statements.append)

    insert_rows(conn, "t", "(?, ?, ?, 'c')", [row[:3] for row in rows])
    insert_rows(conn, "t", "(?, ?, ?, ?)", [])

    assert len(statements) == 16  # 10 of 64 rows, then 3 of 16 and 3 of 4
    assert conn.execute("SELECT n, a, b, c FROM t ORDER BY rowid").fetchall() == rows


def test_rows_of_large_values_are_inserted_a_few_at_a_time(tmp_path: Path) -> None:
    """A cached statement keeps the values it was last given: no more than MAX_BYTES of them."""
    conn = sqlite3.connect(tmp_path / "rows.db", isolation_level=None)
    conn.execute("CREATE TABLE t (n INTEGER, items BLOB)")
    rows = [(n, bytes([n]) * 300_000) for n in range(9)]
    statements: list[str] = []
    conn.set_trace_callback(statements.append)

    insert_rows(conn, "t", "(?, ?)", rows)

    assert len(statements) == 9  # four of them would be 1.2 MB: one at a time
    assert conn.execute("SELECT n, items FROM t ORDER BY rowid").fetchall() == rows
