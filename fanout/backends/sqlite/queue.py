"""A chunk queue with SQS semantics in the same SQLite file.

A received message stays invisible for its visibility timeout and counts one more receive; a
message received more than `max_receive_count` times moves to the dead letters instead of being
delivered (SQS's redrive policy). Receipts change on every receive, so a stale consumer's delete
does nothing.

Beyond SQS, each received message records its consumer's token, and consumers say they are
alive (`owners`): the messages of one that died are handed back at once (`reclaim`) rather than
after their visibility timeout. The store enqueues what it releases in its own transactions
(`enqueue`), so no crash can separate a release from its message.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Sequence

from fanout.backends.sqlite.db import Database
from fanout.backends.sqlite.inserts import insert_rows
from fanout.models import ChunkRef, Delivery, JobId

CHUNKS = "chunks"
DEAD = "dead"
# The oldest visible messages of a queue, read along the `messages_fifo` index (db.SCHEMA).
VISIBLE = (
    'SELECT id, job_id, start, "end", receive_count FROM messages'
    " WHERE queue = ? AND visible_at <= ? ORDER BY id LIMIT ?"
)


def start_received(conn: sqlite3.Connection, job_id: str, start: int, end: int, now: float) -> None:
    """Mark a delivered chunk running, and its job, in the transaction that delivers it: the
    worker starts it at once, and `SqliteStore.start_chunk` then only reads (one write
    transaction less per chunk). A chunk that is not released (done, split, dropped with its
    ended job) or already running is left as it is."""
    conn.execute(
        "UPDATE chunks SET state = 'running'"
        " WHERE job_id = ? AND start = ? AND \"end\" = ? AND state = 'released'",
        (job_id, start, end),
    )
    conn.execute(
        "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, ?),"
        " updated_at = ? WHERE id = ? AND status IN ('queued', 'running')",
        (now, now, job_id),
    )


def enqueue(conn: sqlite3.Connection, chunks: Sequence[ChunkRef]) -> None:
    """Put chunks in the queue inside the caller's transaction, in their order."""
    rows = [(CHUNKS, c.job_id, c.start, c.end) for c in chunks]
    insert_rows(conn, 'messages (queue, job_id, start, "end", visible_at)', "(?, ?, ?, ?, 0)", rows)


class SqliteChunkQueue:
    """Implements ChunkQueue and Leases."""

    def __init__(self, db: Database, max_receive_count: int) -> None:
        self.db = db
        self.max_receive_count = max_receive_count

    def send(self, chunks: Sequence[ChunkRef]) -> None:
        if not chunks:
            return
        with self.db.write() as conn:
            enqueue(conn, chunks)

    def receive(
        self, max_messages: int, visibility_timeout: float, owner: str = ""
    ) -> list[Delivery]:
        return self._receive(CHUNKS, max_messages, visibility_timeout, owner)

    def receive_dead(
        self, max_messages: int, visibility_timeout: float, owner: str = ""
    ) -> list[Delivery]:
        return self._receive(DEAD, max_messages, visibility_timeout, owner)

    def _receive(
        self, queue: str, max_messages: int, visibility_timeout: float, owner: str
    ) -> list[Delivery]:
        now = time.time()
        # Look before taking the write lock: an idle poll must not queue behind writers.
        if not self.db.connection().execute(VISIBLE, (queue, now, 1)).fetchone():
            return []
        deliveries = []
        with self.db.write() as conn:
            for message_id, job_id, start, end, count in conn.execute(
                VISIBLE, (queue, now, max_messages)
            ).fetchall():
                if queue == CHUNKS and count >= self.max_receive_count:
                    conn.execute(
                        "UPDATE messages SET queue = ?, visible_at = 0, receive_count = 0,"
                        " receipt = NULL, owner = NULL WHERE id = ?",
                        (DEAD, message_id),
                    )
                    continue
                receipt = uuid.uuid4().hex
                conn.execute(
                    "UPDATE messages SET visible_at = ?, receive_count = receive_count + 1,"
                    " receipt = ?, owner = ? WHERE id = ?",
                    (now + visibility_timeout, receipt, owner, message_id),
                )
                if queue == CHUNKS:
                    start_received(conn, job_id, start, end, now)
                deliveries.append(Delivery(ChunkRef(JobId(job_id), start, end), receipt, count + 1))
        return deliveries

    def delete(self, receipt: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM messages WHERE receipt = ?", (receipt,))

    def extend(self, receipt: str, visibility_timeout: float) -> None:
        with self.db.write() as conn:
            conn.execute(
                "UPDATE messages SET visible_at = ? WHERE receipt = ?",
                (time.time() + visibility_timeout, receipt),
            )

    def release(self, receipt: str) -> None:
        """Hand a message back unprocessed: visible now, its receive count standing."""
        with self.db.write() as conn:
            conn.execute(
                "UPDATE messages SET visible_at = 0, receipt = NULL, owner = NULL"
                " WHERE receipt = ?",
                (receipt,),
            )

    # -- leases -------------------------------------------------------------------------------

    def heartbeat(self, owner: str, now: float) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO owners (token, seen_at) VALUES (?, ?)"
                " ON CONFLICT (token) DO UPDATE SET seen_at = excluded.seen_at",
                (owner, now),
            )

    def reclaim(self, owner: str | None, now: float, dead_after: float) -> int:
        """A message received without an owner ('', as tests do by hand) is never reclaimed."""
        held: tuple[str, tuple[object, ...]]
        forget: tuple[str, tuple[object, ...]]
        if owner is None:
            held = (
                "owner != '' AND owner NOT IN (SELECT token FROM owners WHERE seen_at >= ?)",
                (now - dead_after,),
            )
            forget = ("seen_at < ?", (now - dead_after,))
        else:
            held, forget = ("owner = ?", (owner,)), ("token = ?", (owner,))
        # Look before taking the write lock: a sweep every second must cost nothing when idle.
        if owner is None and not self._reclaimable(now, held, forget):
            return 0
        with self.db.write() as conn:
            conn.execute(f"DELETE FROM owners WHERE {forget[0]}", forget[1])
            return conn.execute(
                "UPDATE messages SET visible_at = 0, receipt = NULL, owner = NULL"
                f" WHERE receipt IS NOT NULL AND visible_at > ? AND {held[0]}",
                (now, *held[1]),
            ).rowcount

    def _reclaimable(
        self,
        now: float,
        held: tuple[str, tuple[object, ...]],
        forget: tuple[str, tuple[object, ...]],
    ) -> bool:
        conn = self.db.connection()
        found = conn.execute(
            "SELECT 1 FROM messages WHERE receipt IS NOT NULL AND visible_at > ?"
            f" AND {held[0]} LIMIT 1",
            (now, *held[1]),
        ).fetchone()
        return found is not None or (
            conn.execute(f"SELECT 1 FROM owners WHERE {forget[0]} LIMIT 1", forget[1]).fetchone()
            is not None
        )

    def depth(self) -> dict[str, int]:
        rows = (
            self.db.connection()
            .execute("SELECT queue, COUNT(*) FROM messages GROUP BY queue")
            .fetchall()
        )
        return {queue: count for queue, count in rows}
