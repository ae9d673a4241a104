"""Each task's seconds per item on SQLite: one row a task, moved by one atomic upsert."""

from __future__ import annotations

from fanout.backends.sqlite.db import Database


class SqliteTaskStats:
    """Implements TaskStats."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def seconds_per_item(self, task: str) -> float | None:
        row = (
            self.db.connection()
            .execute("SELECT seconds_per_item FROM task_stats WHERE task = ?", (task,))
            .fetchone()
        )
        return None if row is None else float(row[0])

    def record_time(self, task: str, seconds_per_item: float, weight: float, now: float) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO task_stats (task, seconds_per_item, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (task) DO UPDATE SET updated_at = excluded.updated_at,"
                " seconds_per_item = seconds_per_item"
                " + ? * (excluded.seconds_per_item - seconds_per_item)",
                (task, seconds_per_item, now, weight),
            )
