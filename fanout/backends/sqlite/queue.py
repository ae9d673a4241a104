"""A chunk queue with SQS semantics in the same SQLite file.

A received message stays invisible for its visibility timeout and counts one more receive; a
message received more than `max_receive_count` times moves to the dead letters instead of being
delivered (SQS's redrive policy). Receipts change on every receive, so a stale consumer's delete
does nothing.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence

from fanout.backends.sqlite.db import Database
from fanout.models import ChunkRef, Delivery, JobId

CHUNKS = "chunks"
DEAD = "dead"


class SqliteChunkQueue:
    def __init__(self, db: Database, max_receive_count: int) -> None:
        self.db = db
        self.max_receive_count = max_receive_count

    def send(self, chunks: Sequence[ChunkRef]) -> None:
        if not chunks:
            return
        with self.db.write() as conn:
            conn.executemany(
                'INSERT INTO messages (queue, job_id, start, "end", visible_at)'
                " VALUES (?, ?, ?, ?, 0)",
                ((CHUNKS, c.job_id, c.start, c.end) for c in chunks),
            )

    def receive(self, max_messages: int, visibility_timeout: float) -> list[Delivery]:
        return self._receive(CHUNKS, max_messages, visibility_timeout)

    def receive_dead(self, max_messages: int, visibility_timeout: float) -> list[Delivery]:
        return self._receive(DEAD, max_messages, visibility_timeout)

    def _receive(self, queue: str, max_messages: int, visibility_timeout: float) -> list[Delivery]:
        now = time.time()
        visible = (
            'SELECT id, job_id, start, "end", receive_count FROM messages'
            " WHERE queue = ? AND visible_at <= ? ORDER BY id LIMIT ?"
        )
        # Look before taking the write lock: an idle poll must not queue behind writers.
        if not self.db.connection().execute(visible, (queue, now, 1)).fetchone():
            return []
        deliveries = []
        with self.db.write() as conn:
            for message_id, job_id, start, end, count in conn.execute(
                visible, (queue, now, max_messages)
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
                    (now + visibility_timeout, receipt, os.getpid(), message_id),
                )
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
        """Hand a message back unprocessed (a clean shutdown): visible now, receive uncounted."""
        with self.db.write() as conn:
            conn.execute(
                "UPDATE messages SET visible_at = 0, receive_count = MAX(receive_count - 1, 0),"
                " receipt = NULL, owner = NULL WHERE receipt = ?",
                (receipt,),
            )

    def release_owner(self, pid: int) -> int:
        """Make the messages a dead worker process held visible now rather than after their
        visibility timeout; their receive counts stand, so a poison chunk still dead-letters."""
        with self.db.write() as conn:
            return conn.execute(
                "UPDATE messages SET visible_at = 0, receipt = NULL, owner = NULL"
                " WHERE owner = ? AND receipt IS NOT NULL",
                (pid,),
            ).rowcount

    def depth(self) -> dict[str, int]:
        rows = (
            self.db.connection()
            .execute("SELECT queue, COUNT(*) FROM messages GROUP BY queue")
            .fetchall()
        )
        return {queue: count for queue, count in rows}
