"""Build the service from settings: the one place that picks the adapters."""

from __future__ import annotations

from fanout import tasks
from fanout.service import Backend, Fanout
from fanout.settings import Settings


def sqlite_backend(settings: Settings) -> Backend:
    from fanout.backends.sqlite import Database, SqliteChunkQueue, SqliteStore

    db = Database(settings.database)
    store = SqliteStore(db)
    queue = SqliteChunkQueue(db, settings.max_receive_count)
    return Backend(
        jobs=store, chunks=store, queue=queue, outbox=store, idempotency=store, reconcilable=store
    )


def build(settings: Settings) -> Fanout:
    """The service on the embedded SQLite backend, with the built-in and configured tasks."""
    tasks.load(settings.tasks)
    return Fanout(sqlite_backend(settings), settings)
