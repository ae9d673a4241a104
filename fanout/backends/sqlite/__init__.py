"""The embedded default: one SQLite file holds jobs, chunks, results, queue and outbox."""

from fanout.backends.sqlite.db import Database
from fanout.backends.sqlite.queue import SqliteChunkQueue
from fanout.backends.sqlite.store import SqliteStore

__all__ = ["Database", "SqliteChunkQueue", "SqliteStore"]
