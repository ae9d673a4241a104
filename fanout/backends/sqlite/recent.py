"""Rows read on a thread's connection, kept until the file changes: for the reads clients repeat.

Clients poll `GET /jobs/{id}` many times a second, mostly for jobs that have not moved since the
last poll; reading and decoding the job's row cost more than all the rest of the request.
`PRAGMA data_version` says whether anything changed: it moves whenever another connection (any
thread's writer, any process) commits (https://sqlite.org/pragma.html#pragma_data_version), and
`total_changes` counts this connection's own changes. While neither has moved, a value read
through this connection is what reading it again would give. Taking the version *before* the
read keeps that true when a commit lands between the two: the value is then newer than its
version, and the next look sees the version moved.

Checking costs a read transaction (~4 us here, against ~30 us for the job's row decoded); under
a steady write load the version moves between most reads and this just reads again.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from fanout.backends.sqlite.db import Database

V = TypeVar("V")
# Values kept per thread (the event loop's, and each threadpool thread that reads): the jobs
# being polled. Bounded in count here and in size by the caller, whatever the callers ask.
LIMIT = 128


class _Seen(Generic[V]):
    def __init__(self, conn: sqlite3.Connection, version: tuple[int, int]) -> None:
        self.conn = conn
        self.version = version
        self.values: dict[Hashable, V] = {}


class RecentReads(Generic[V]):
    def __init__(self, db: Database, limit: int = LIMIT) -> None:
        self.db = db
        self.limit = limit
        self._local = threading.local()

    def get(self, key: Hashable, read: Callable[[], tuple[V, bool]]) -> V:
        """`read()`'s value (it reads through this thread's connection), or what it gave last
        time for `key` if nothing has changed the file since. `read` also says whether its value
        is worth keeping (a large one is not: it would hold memory in every thread)."""
        conn = self.db.connection()
        version = (conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes)
        seen: _Seen[V] | None = getattr(self._local, "seen", None)
        if seen is None or seen.conn is not conn or seen.version != version:
            seen = self._local.seen = _Seen(conn, version)
        if key in seen.values:
            return seen.values[key]
        value, keep = read()
        if keep:
            if len(seen.values) >= self.limit:
                seen.values.clear()
            seen.values[key] = value
        return value


class SameRows(Generic[V]):
    """Per thread, the rows a listing read and the values they decoded to: the same row read
    again, unchanged, by a listing or a single read, gives back the same (immutable) value, not
    a new one, so what was rendered from it last time serves again
    (`fanout.api.routes.status.Bodies`).

    A listing reads its page anew every time, yet mostly the jobs on it have not changed since
    the last time: comparing a row (a tuple, compared in C) costs far less than decoding it and
    rendering the job. Only listings keep rows: every thread that reads single jobs (each
    submit reads the job it stored) would otherwise hold `limit` of them, most never read
    again. Bounded in count here; the caller says which values are small enough to keep."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._local = threading.local()

    def _seen(self) -> dict[Any, tuple[tuple[Any, ...], V]]:
        seen: dict[Any, tuple[tuple[Any, ...], V]] | None = getattr(self._local, "seen", None)
        if seen is None:
            seen = self._local.seen = {}
        return seen

    def decode(self, row: tuple[Any, ...], decode: Callable[[tuple[Any, ...]], V]) -> V:
        """`decode(row)`, or the value this thread's listings kept for this row (keyed by its
        first column) if it is unchanged."""
        found = self._seen().get(row[0])
        if found is not None and found[0] == row:
            return found[1]
        return decode(row)

    def keep(self, row: tuple[Any, ...], decode: Callable[[tuple[Any, ...]], V], keep: bool) -> V:
        """As `decode`, for a listing: the value is kept for next time when `keep`."""
        seen = self._seen()
        found = seen.get(row[0])
        if found is not None and found[0] == row:
            return found[1]
        value = decode(row)
        if keep:
            if found is None and len(seen) >= self.limit:
                del seen[next(iter(seen))]  # the oldest
            seen[row[0]] = (row, value)
        return value
