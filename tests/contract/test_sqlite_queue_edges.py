"""The SQLite queue's leases and dead-lettering at their edges: which messages a sweep hands
back, which consumers it forgets, a receive that dead-letters one message and delivers the
rest, and idle polls and sweeps that never wait for the write lock.

A visibility timeout of 0 makes a received message visible again at once (`visible_at <= now`),
so a receive count can be run up without waiting.

Written to kill mutants `python -m bench mutation` found surviving (issue 13). SQLite only; in
tests/contract/ because the mutation run selects this folder already (changing its selection
resets every mutmut verdict).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from fanout.backends.sqlite import Database, SqliteChunkQueue
from fanout.backends.sqlite.queue import CHUNKS, DEAD
from fanout.models import ChunkRef, JobId
from fanout.settings import Settings

A = ChunkRef(JobId("job-1"), 0, 10)
B = ChunkRef(JobId("job-1"), 10, 20)
LONG = 300.0
DEAD_AFTER = 10.0


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database)
    yield database
    database.close()


@pytest.fixture
def queue(db: Database) -> SqliteChunkQueue:
    return SqliteChunkQueue(db, max_receive_count=3)


def owners(db: Database) -> list[str]:
    return [row[0] for row in db.connection().execute("SELECT token FROM owners ORDER BY token")]


def test_a_receive_that_dead_letters_one_message_still_delivers_the_next(
    queue: SqliteChunkQueue,
) -> None:
    queue.send([A])
    for _ in range(3):
        [delivery] = queue.receive(10, 0.0)
    assert delivery.receive_count == 3
    queue.send([B])

    delivered = queue.receive(10, LONG)

    assert [(d.chunk, d.receive_count) for d in delivered] == [(B, 1)]
    assert [d.chunk for d in queue.receive_dead(10, LONG)] == [A]
    assert queue.depth() == {CHUNKS: 1, DEAD: 1}


def test_a_message_received_without_an_owner_is_never_reclaimed(
    queue: SqliteChunkQueue,
) -> None:
    """Tests and tools receive by hand without an owner: only the visibility timeout frees it."""
    queue.send([A])
    for _ in range(3):
        queue.receive(10, 0.0)
    queue.send([B])
    assert [d.chunk for d in queue.receive(10, LONG)] == [B]
    assert [d.chunk for d in queue.receive_dead(10, LONG)] == [A]

    assert queue.reclaim(None, time.time(), DEAD_AFTER) == 0
    assert queue.receive(10, LONG) == []
    assert queue.receive_dead(10, LONG) == []


def test_a_dead_letter_held_by_a_consumer_that_died_is_handed_back(
    queue: SqliteChunkQueue,
) -> None:
    queue.send([A])
    for _ in range(3):
        queue.receive(10, 0.0)
    assert queue.receive(10, 0.0) == [], "dead-lettered"
    [held] = queue.receive_dead(10, LONG, owner="worker-gone")

    assert queue.reclaim(None, time.time(), DEAD_AFTER) == 1

    [again] = queue.receive_dead(10, LONG, owner="worker-new")
    assert again.chunk == held.chunk == A
    assert again.receipt != held.receipt


def test_a_sweep_forgets_consumers_not_heard_from_even_when_they_held_nothing(
    db: Database, queue: SqliteChunkQueue
) -> None:
    """The owners table would otherwise keep a row for every worker process that ever ran."""
    now = time.time()
    queue.heartbeat("worker-old", now - 2 * DEAD_AFTER)
    queue.heartbeat("worker-live", now)

    assert queue.reclaim(None, now, DEAD_AFTER) == 0

    assert owners(db) == ["worker-live"]


def test_an_idle_sweep_hands_back_nothing_and_says_so(queue: SqliteChunkQueue) -> None:
    queue.heartbeat("worker-live", time.time())
    queue.send([A])
    queue.receive(10, LONG, owner="worker-live")

    assert queue.reclaim(None, time.time(), DEAD_AFTER) == 0
    assert queue.reclaim(None, time.time(), DEAD_AFTER) == 0
    assert queue.receive(10, LONG) == []


def test_an_idle_poll_and_an_idle_sweep_answer_while_another_process_writes(
    settings: Settings, queue: SqliteChunkQueue
) -> None:
    """Workers poll and the server sweeps every second: with nothing to do, neither may queue
    behind a writer (the database's busy timeout is 30 s)."""
    queue.heartbeat("worker-live", time.time())
    writer = sqlite3.connect(settings.database, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            sweep = pool.submit(queue.reclaim, None, time.time(), DEAD_AFTER)
            poll = pool.submit(queue.receive, 10, LONG, "worker-live")
            try:
                assert (sweep.result(timeout=10), poll.result(timeout=10)) == (0, [])
            finally:
                writer.execute("ROLLBACK")
    finally:
        writer.close()


def test_the_depth_counts_each_queue_s_messages(queue: SqliteChunkQueue) -> None:
    assert queue.depth() == {}
    queue.send([A, B])
    for _ in range(4):
        queue.receive(1, 0.0)

    assert queue.depth() == {CHUNKS: 1, DEAD: 1}
