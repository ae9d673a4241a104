"""One SQLite file in WAL mode, a connection per thread, and the schema."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from fanout.backends.sqlite.bells import Bells
from fanout.backends.sqlite.group import GroupWriter, ProcessLock
from fanout.errors import StoreUnavailable

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    task TEXT NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    options TEXT NOT NULL,
    max_concurrency INTEGER NOT NULL,
    webhook_url TEXT,
    webhook_secret TEXT,
    total INTEGER NOT NULL,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    deadline REAL,
    updated_at REAL NOT NULL,
    reduce_value TEXT,
    error TEXT,
    chunks_run INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker_seconds REAL NOT NULL DEFAULT 0,
    redrive_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_tenant ON jobs (tenant, seq);
CREATE INDEX IF NOT EXISTS jobs_by_tenant_status ON jobs (tenant, status, seq);
CREATE INDEX IF NOT EXISTS jobs_active ON jobs (status) WHERE status IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- state: pending (not yet released) -> released (in the queue) -> running -> done | split
CREATE TABLE IF NOT EXISTS chunks (
    job_id TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    state TEXT NOT NULL,
    items BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS chunks_key ON chunks (job_id, start, "end");
CREATE INDEX IF NOT EXISTS chunks_by_state ON chunks (job_id, state, start);

CREATE TABLE IF NOT EXISTS results (
    job_id TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    lines BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS results_key ON results (job_id, start);

CREATE INDEX IF NOT EXISTS chunks_unstarted ON chunks (state)
    WHERE state IN ('pending', 'released');

-- owner: the token of the worker process holding a received message (see `owners`)
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    job_id TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT,
    owner TEXT
);
-- A receive takes the oldest visible messages: walking this index in id order skips only the
-- ones in flight (a few per worker), where one on (queue, visible_at) sorted every visible
-- message on each receive, a cost growing with the backlog. An earlier file's index goes.
DROP INDEX IF EXISTS messages_visible;
CREATE INDEX IF NOT EXISTS messages_fifo ON messages (queue, id);
CREATE INDEX IF NOT EXISTS messages_receipt ON messages (receipt);
CREATE INDEX IF NOT EXISTS messages_chunk ON messages (job_id, start, "end");

-- Worker processes alive, by token (one per process life: a pid is reused, a token is not).
CREATE TABLE IF NOT EXISTS owners (
    token TEXT PRIMARY KEY,
    seen_at REAL NOT NULL
);

-- One row that readiness probes write: a write that fails means the store cannot write.
CREATE TABLE IF NOT EXISTS probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS outbox (
    event_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    payload BLOB NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    history TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);

-- Each task's seconds per item, a moving average over its chunks (fanout.chunking).
CREATE TABLE IF NOT EXISTS task_stats (
    task TEXT PRIMARY KEY,
    seconds_per_item REAL NOT NULL,
    updated_at REAL NOT NULL
);

-- job_id: the one job the key creates, fixed at its first claim; claimed_at: its holder's lease
CREATE TABLE IF NOT EXISTS idempotency (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response BLOB,
    created_at REAL NOT NULL,
    job_id TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE INDEX IF NOT EXISTS idempotency_by_job ON idempotency (job_id);
CREATE INDEX IF NOT EXISTS idempotency_by_age ON idempotency (created_at);
"""
# SQLite's answers that mean "cannot write now, nothing was written": SQLITE_FULL, SQLITE_IOERR,
# SQLITE_READONLY, SQLITE_CANTOPEN and SQLITE_BUSY past the busy timeout
# (https://www.sqlite.org/rescode.html).
UNAVAILABLE = ("full", "disk i/o", "readonly", "unable to open", "locked", "busy")


def _unavailable(error: sqlite3.Error) -> StoreUnavailable | None:
    message = str(error).lower()
    if isinstance(error, sqlite3.OperationalError) and any(w in message for w in UNAVAILABLE):
        return StoreUnavailable(f"the database cannot write: {error}")
    return None


# Columns added to a table since the first release: a file made before them gets them at start.
ADDED_COLUMNS = {
    "idempotency": {
        "job_id": "TEXT NOT NULL DEFAULT ''",
        "claimed_at": "REAL NOT NULL DEFAULT 0",
    },
    "jobs": {
        "chunks_run": "INTEGER NOT NULL DEFAULT 0",
        "attempts": "INTEGER NOT NULL DEFAULT 0",
        "worker_seconds": "REAL NOT NULL DEFAULT 0",
        "redrive_count": "INTEGER NOT NULL DEFAULT 0",
    },
}


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a file made by an earlier version up to SCHEMA (tables it already had)."""
    for table, columns in ADDED_COLUMNS.items():
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, declaration in columns.items():
            if name not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")


JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


def _create(path: Path) -> None:
    """A new file whose free pages can be given back (fanout.backends.sqlite.retention): only
    a file with nothing in it yet takes `auto_vacuum`, and the WAL switch writes the header
    that keeps it."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


class Database:
    """Hands each thread its own connection to one SQLite file for reads; writes take turns on
    one connection per process and commit in groups (`fanout.backends.sqlite.group`).

    WAL lets readers run beside the one writer. `synchronous=NORMAL` never corrupts the file and
    loses nothing when a process crashes; only a power cut can roll back the last transactions,
    and then a chunk's message comes back with it and is run again. Job creation, which `202
    Accepted` promises is durable, is committed with FULL (one fsync for a group of them).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._group = GroupWriter(self._connect, ProcessLock(path.with_name(path.name + "-writer")))
        self.bells = Bells(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or not path.stat().st_size:
            _create(path)
        conn = self.connection()
        conn.executescript(SCHEMA)
        _migrate(conn)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, for reads (writes go through `write`)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        # After a checkpoint the log is cut back to this size, not left at its largest.
        conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        return conn

    @contextmanager
    def write(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front so it never fails half-way on a lock. A full
        disk or a failing file raises StoreUnavailable, with everything rolled back."""
        try:
            with self._transaction(durable) as conn:
                yield conn
        except sqlite3.Error as error:
            unavailable = _unavailable(error)
            if unavailable is None:
                raise
            raise unavailable from error

    def run(self, work: Callable[[sqlite3.Connection], T], durable: bool = False) -> T:
        """`work(conn)` in a write transaction, run by whichever of this process's threads has
        the turn (`group.GroupWriter.run`: no hand-off between threads within a group); errors
        as `write`'s."""
        try:
            return self._group.run(work, durable)
        except sqlite3.Error as error:
            unavailable = _unavailable(error)
            if unavailable is None:
                raise
            raise unavailable from error

    @contextmanager
    def _transaction(self, durable: bool) -> Iterator[sqlite3.Connection]:
        """This process's threads write in turns and commit in groups (`group.GroupWriter`)."""
        with self._group.write(durable) as conn:
            yield conn

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        self._group.close()
        self.bells.close()
