"""The outbox on SQLite: completion events to deliver, each attempt claimed by one deliverer
and recorded with the next one's time."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic_core import to_json

from fanout.backends.sqlite.db import Database
from fanout.backends.sqlite.rows import event_from_row
from fanout.models import DeliveryStatus, EventId, WebhookEvent


class SqliteOutbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    def due_events(self, now: float, limit: int) -> list[WebhookEvent]:
        rows = (
            self.db.connection()
            .execute(
                "SELECT event_id, url, secret, payload, status, attempts, next_attempt_at, history,"
                " job_id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?"
                " ORDER BY next_attempt_at LIMIT ?",
                (now, limit),
            )
            .fetchall()
        )
        return [e for row in rows if (e := event_from_row(row, 0, row[8])) is not None]

    def claim_attempts(
        self, events: Sequence[WebhookEvent], now: float, lease_until: float
    ) -> list[bool]:
        """One write for the batch: a notifier claims what it read in one turn of the writer,
        where a write per event kept the workers waiting for the file's write lock."""
        if not events:
            return []
        with self.db.write() as conn:
            return [
                conn.execute(
                    "UPDATE outbox SET next_attempt_at = ? WHERE event_id = ?"
                    " AND status = 'pending' AND attempts = ? AND next_attempt_at <= ?",
                    (lease_until, event.id, event.attempts, now),
                ).rowcount
                == 1
                for event in events
            ]

    def renew_claim(self, event: WebhookEvent, lease_until: float) -> bool:
        with self.db.write() as conn:
            return (
                conn.execute(
                    "UPDATE outbox SET next_attempt_at = ? WHERE event_id = ?"
                    " AND status = 'pending' AND attempts = ? AND next_attempt_at = ?",
                    (lease_until, event.id, event.attempts, event.next_attempt_at),
                ).rowcount
                == 1
            )

    def undelivered(self) -> int:
        (count,) = (
            self.db.connection()
            .execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
            .fetchone()
        )
        return int(count)

    def record_attempt(
        self,
        event_id: EventId,
        at: float,
        status_code: int | None,
        error: str | None,
        next_attempt_at: float | None,
        delivered: bool,
    ) -> None:
        status = DeliveryStatus.after_attempt(delivered, next_attempt_at)
        attempt = to_json({"at": at, "status_code": status_code, "error": error}).decode()
        row = (status, next_attempt_at, attempt, event_id)
        # Run by whichever thread has the write turn (`Database.run`): the notifier records
        # from many threads at once, as the API submits.
        self.db.run(
            lambda conn: conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, status = ?,"
                " next_attempt_at = COALESCE(?, next_attempt_at),"
                " history = json_insert(history, '$[#]', json(?)) WHERE event_id = ?",
                row,
            )
        )
