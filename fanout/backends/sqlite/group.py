"""Group commit: the write transactions of one process's threads, done as few SQLite commits.

SQLite has one writer at a time; threads that each `BEGIN IMMEDIATE` on their own connection
wait for it in SQLite's busy handler, which sleeps 1, 2, 5, 10... ms between tries, and each
durable commit pays an fsync (~1.5 ms here). So a process's writes take turns on a Python lock
instead, on one connection, and share a transaction: each thread's work is a savepoint in the
open transaction, and the thread whose turn ends with no other waiting commits it, for everyone
in it. Every thread returns only once the commit holding its work is done (or raises if that
commit failed), so `202 Accepted` still means on disk: a durable thread's work is committed with
`synchronous=FULL`, one fsync for all the submissions that arrived meanwhile.

A durable write arriving while a non-durable transaction is open commits that one first (the
level cannot change inside a transaction); a non-durable write joins a durable transaction.

Handing the turn from thread to thread has a price where an event loop keeps the interpreter
lock busy (the API's process): each thread woken for its turn waits for that lock, and the
transaction stays open, holding every other process's writes, meanwhile (~0.8 ms a member, 14 ms
a transaction of 17 submits, under `python -m bench load`). So a write given as a function
(`run`) is queued, and the thread that leads a group runs every function queued so far itself,
each in a savepoint, before it commits: the work of a group is done by one thread, without
hand-offs. Then it passes the turn to the thread of the first function queued since, which
leads the next group, and returns: a thread runs one group, never the groups that keep coming
after its own (running them, under `python -m bench load`, kept one submit in thirty waiting
30-280 ms for its answer; under a stream that never paused, it would wait for ever).

A queued function whose class has a `together` is run with the functions of its class queued
beside it in one go: `together(conn, works)` does what each would do alone, in a few statements
for all of them, and gives back each one's result or the exception it alone would have raised.
If `together` itself raises, nothing of it stays and each is run alone, as any function is.

Between processes (the server and its workers), the turn is an exclusive `flock` on a file
beside the database, taken before `BEGIN IMMEDIATE` and given back after the commit: a process
waiting for it sleeps in the kernel and wakes as soon as it is free, where SQLite's busy
handler would poll with sleeps of up to 100 ms. SQLite's own locking stays the rule for anyone
else writing the file; the flock only orders fanout's processes.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")

# A transaction holding this many threads' work is committed even if more are waiting, so that
# the first of them does not wait for an unbounded queue.
MAX_MEMBERS = 64


class ProcessLock:
    """An exclusive `flock` on `path`, opened once per process (a forked child opens its own:
    an inherited descriptor would share its parent's lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0

    def acquire(self) -> None:
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None


class _Queued(Generic[T]):
    """A function queued for whichever thread has the turn, and what came of it."""

    def __init__(
        self, work: Callable[[sqlite3.Connection], T], durable: bool, done: threading.Event
    ) -> None:
        self.work = work
        self.durable = durable
        self.done = done  # ran and settled, or its thread is to lead the next group
        self.leads = False
        self.generation = -1  # the transaction it ran in
        self.result: T | None = None
        self.error: BaseException | None = None


class GroupWriter:
    def __init__(
        self, connect: Callable[[], sqlite3.Connection], lock: ProcessLock | None = None
    ) -> None:
        self._connect = connect
        self._lock = lock
        self._conn: sqlite3.Connection | None = None
        self._turn = threading.Lock()
        self._state = threading.Condition()  # guards _waiting, _generation, _failures
        self._waiting = 0
        self._generation = 0
        self._failures: dict[int, BaseException] = {}
        self._queued: list[_Queued[object]] = []  # guarded by _state
        self._event: Callable[[], threading.Event] = threading.Event  # what `run` waits on
        # Touched only by the thread whose turn it is:
        self._owner: int | None = None
        self._open = False
        self._durable = False
        self._members = 0
        self._synchronous: bool | None = None  # the connection's level: FULL (True) or NORMAL

    @contextmanager
    def write(self, durable: bool) -> Iterator[sqlite3.Connection]:
        if self._owner == threading.get_ident():  # a write inside a write: a nested savepoint
            with self._savepoint(self._connection()) as conn:
                yield conn
            return
        self._take_turn()
        try:
            generation, first = self._join(durable)
            conn = self._connection()
            try:
                if first:
                    yield conn
                else:
                    with self._savepoint(conn):
                        yield conn
            except BaseException:
                if first:
                    self._rollback()  # nothing but this thread's work was in it
                else:
                    self._settle()  # the others' work stays, committed now if nobody follows
                raise
            self._members += 1
            committed, failure = self._settle()
        finally:
            self._give_turn()
        if not committed:
            failure = self._outcome(generation)
        if failure is not None:
            raise failure

    def run(self, work: Callable[[sqlite3.Connection], T], durable: bool) -> T:
        """`work(conn)` in a write transaction, as `write` would run it, by this thread or by
        the one that leads its group (the function must not care which thread runs it); returns
        once the transaction holding it is committed, or raises what `work` or the commit
        raised (`work` raising leaves nothing of its own, and the others' work stands)."""
        if self._owner == threading.get_ident():  # inside a write or a run: a savepoint of it
            with self._savepoint(self._connection()) as conn:
                return work(conn)
        queued = _Queued(work, durable, self._event())
        with self._state:
            self._queued.append(queued)  # type: ignore[arg-type]  # read back as T below
            mine = self._turn.acquire(blocking=False)
        if not mine:
            try:
                queued.done.wait()  # its group ran, or the turn was passed to this thread
            except BaseException:  # KeyboardInterrupt, or what a signal handler raised
                self._withdraw(queued)
                raise
        if mine or queued.leads:
            self._owner = threading.get_ident()
            try:
                self._run_queued()  # this thread's function and every one queued before it
            finally:
                self._give_turn()
        if queued.error is not None:
            raise queued.error
        failure = self._outcome(queued.generation)
        if failure is not None:
            raise failure
        return queued.result  # type: ignore[return-value]  # set by _run_queued, done is set

    def _withdraw(self, queued: _Queued[T]) -> None:
        """For a thread interrupted while it waits: its function leaves the queue unless a
        group has taken it already (then it runs, as it would have), and a turn passed to this
        thread is passed on, so no other thread waits for it for ever."""
        with self._state:
            if queued in self._queued:
                self._queued.remove(queued)  # type: ignore[arg-type]  # as queued by `run`
            leads = queued.leads
        if leads:
            self._give_turn()

    def _give_turn(self) -> None:
        """Pass the turn to the thread of the first function queued meanwhile, which leads the
        next group; give it up when none is queued, or when a `write` waits for it (that one
        passes it on in turn). The queue is looked at and the turn passed or given up in one
        step under `_state`, so a function queued as the turn is given up is run by its own
        thread, which then takes the turn."""
        with self._state:
            self._owner = None
            if self._queued and not self._waiting:
                successor = self._queued[0]
                successor.leads = True
                successor.done.set()
            else:
                self._turn.release()

    def _run_queued(self) -> None:
        with self._state:
            queued, self._queued = self._queued, []
        for run in _runs(queued):
            if len(run) > 1 and self._run_together(run):
                continue
            for item in run:
                self._run_alone(item)
        try:
            if self._open and not self._members:
                self._rollback()  # every function failed: nothing is in it, nobody may wait
            else:
                self._settle()
        finally:
            for item in queued:
                item.done.set()

    def _run_alone(self, item: _Queued[object]) -> None:
        try:
            item.generation, _ = self._join(item.durable)
            with self._savepoint(self._connection()) as conn:
                item.result = item.work(conn)
            self._members += 1
        except BaseException as error:  # the function's own thread raises it
            item.error = error

    def _run_together(self, run: list[_Queued[object]]) -> bool:
        """The functions of `run` (of one class, one level) done by their class's `together`
        in one savepoint; False, with nothing of it left, if `together` raised."""
        together = getattr(type(run[0].work), "together")  # noqa: B009  # `_runs` saw it
        try:
            generation, _ = self._join(run[0].durable)
            with self._savepoint(self._connection()) as conn:
                outcomes = together(conn, [item.work for item in run])
                if len(outcomes) != len(run):  # a bug in `together`: undone, as if it raised
                    raise RuntimeError(f"{len(outcomes)} outcomes for {len(run)} functions")
        except BaseException:
            return False  # each is run alone, and raises what it alone raises
        for item, outcome in zip(run, outcomes, strict=True):
            item.generation = generation
            if isinstance(outcome, BaseException):
                item.error = outcome
            else:
                item.result = outcome
                self._members += 1
        return True

    def _take_turn(self) -> None:
        """Wait for the turn, counted in `_waiting` meanwhile (a group leaves its transaction
        open for a waiting `write`, and the turn is given up rather than passed on): an
        interrupted wait is counted out too, or no group would commit or pass the turn again."""
        with self._state:
            self._waiting += 1
        try:
            self._turn.acquire()
        finally:
            with self._state:
                self._waiting -= 1
        self._owner = threading.get_ident()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn, self._synchronous = self._connect(), None
        return self._conn

    def _join(self, durable: bool) -> tuple[int, bool]:
        """Join the open transaction, or open one at the level needed: its generation, and
        whether this thread's work is the first in it."""
        if self._open and durable and not self._durable:
            self._commit()  # its members hear how it went; this thread opens another
        if self._open:
            return self._generation, False
        conn = self._connection()
        if self._synchronous is not durable:  # a pragma costs as much as a small statement
            conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._synchronous = durable
        if self._lock is not None:
            self._lock.acquire()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        self._open, self._durable, self._members = True, durable, 0
        return self._generation, True

    @contextmanager
    def _savepoint(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        conn.execute("SAVEPOINT member")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK TO member")
            conn.execute("RELEASE member")
            raise
        conn.execute("RELEASE member")

    def _settle(self) -> tuple[bool, BaseException | None]:
        """Commit the open transaction unless another thread is waiting to add its work (and
        there is room): whether it was committed here, and how that failed if it did."""
        with self._state:
            waiting = self._waiting
        if not self._members or (waiting and self._members < MAX_MEMBERS):
            return False, None
        return True, self._commit()

    def _commit(self) -> BaseException | None:
        conn = self._connection()
        failure: BaseException | None = None
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            failure = error
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        self._finish(failure)
        return failure

    def _rollback(self) -> None:
        conn = self._connection()
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        self._finish(None)

    def _finish(self, failure: BaseException | None) -> None:
        with self._state:
            if failure is not None:
                self._failures[self._generation] = failure
                for old in [g for g in self._failures if g < self._generation - 1000]:
                    del self._failures[old]
            self._generation += 1
            self._state.notify_all()
        self._open, self._members = False, 0
        if self._lock is not None:
            self._lock.release()

    def _outcome(self, generation: int) -> BaseException | None:
        """Wait for the commit of `generation`; how it failed, if it did."""
        with self._state:
            while self._generation <= generation:
                self._state.wait()
            return self._failures.get(generation)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock is not None:
            self._lock.close()


def _runs(queued: list[_Queued[object]]) -> list[list[_Queued[object]]]:
    """`queued` in order, cut into runs to do together: neighbours of one class that has a
    `together`, at one level; every other function is a run of its own."""
    runs: list[list[_Queued[object]]] = []
    for item in queued:
        kind = type(item.work)
        if (
            runs
            and hasattr(kind, "together")
            and type(runs[-1][0].work) is kind
            and runs[-1][0].durable == item.durable
        ):
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs
