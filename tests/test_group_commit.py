"""Group commit (`fanout.backends.sqlite.group`): a process's threads write in turns and share
commits, and each returns only once its own work is committed. On a real SQLite file, with the
statements the writer sends counted by SQLite's trace callback."""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from fanout.backends.sqlite.group import GroupWriter
from tests.waiting import wait_until

THREADS = 16
WRITES = 20


class Traced:
    """Connections to `path` whose statements are counted (COMMIT, FULL, ...)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: Counter[str] = Counter()
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (writer INTEGER, n INTEGER)")
        conn.close()

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.set_trace_callback(lambda sql: self.seen.update([sql.strip().split("(")[0]]))
        return conn

    def rows(self, writer: int | None = None) -> int:
        conn = sqlite3.connect(self.path)
        where, args = ("WHERE writer = ?", (writer,)) if writer is not None else ("", ())
        (count,) = conn.execute(f"SELECT COUNT(*) FROM t {where}", args).fetchone()
        conn.close()
        return int(count)


@pytest.fixture
def traced(tmp_path: Path) -> Traced:
    return Traced(tmp_path / "group.db")


def in_threads(count: int, body: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(writer: int) -> None:
        start.wait()
        try:
            body(writer)
        except BaseException as error:  # collected for the test to look at
            errors.append(error)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return errors


def queued_while_held(
    writer: GroupWriter,
    bodies: list[Callable[[], None]],
    hold: Callable[[sqlite3.Connection], object] = lambda conn: None,
) -> None:
    """Each body on a thread of its own, started while this thread holds the turn (in a write
    doing `hold`) and let go once every one has queued its function; then wait for them."""
    threads = [threading.Thread(target=body) for body in bodies]
    with writer.write(durable=True) as conn:
        hold(conn)
        for thread in threads:
            thread.start()
        wait_until(lambda: len(writer._queued) == len(bodies), 10.0, "every function queued")
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)


def test_concurrent_durable_writes_all_land_in_fewer_commits_than_writes(traced: Traced) -> None:
    writer = GroupWriter(traced.connect)
    unseen: list[int] = []

    def body(w: int) -> None:
        for n in range(WRITES):
            with writer.write(durable=True) as conn:
                conn.execute("INSERT INTO t VALUES (?, ?)", (w, n))
            # Returned: the row is committed, so another connection sees it.
            if traced.rows(w) != n + 1:
                unseen.append(w)

    assert in_threads(THREADS, body) == []

    assert unseen == []
    assert traced.rows() == THREADS * WRITES
    assert traced.seen["COMMIT"] < THREADS * WRITES
    # Every transaction committed at FULL: the level was set once and never lowered.
    assert traced.seen["PRAGMA synchronous=FULL"] == 1
    assert traced.seen["PRAGMA synchronous=NORMAL"] == 0


def test_a_write_that_raises_leaves_nothing_and_the_others_are_kept(traced: Traced) -> None:
    writer = GroupWriter(traced.connect)

    def body(w: int) -> None:
        for n in range(WRITES):
            with writer.write(durable=False) as conn:
                conn.execute("INSERT INTO t VALUES (?, ?)", (w, n))
                if w % 2:
                    raise ValueError(f"writer {w} fails")

    errors = in_threads(THREADS, body)

    assert len(errors) == THREADS // 2 and all(isinstance(e, ValueError) for e in errors)
    assert [traced.rows(w) for w in range(THREADS)] == [
        WRITES if w % 2 == 0 else 0 for w in range(THREADS)
    ]


def test_a_durable_write_commits_the_open_ordinary_transaction_first(traced: Traced) -> None:
    writer = GroupWriter(traced.connect)
    with writer.write(durable=False) as conn:
        conn.execute("INSERT INTO t VALUES (0, 0)")
    with writer.write(durable=True) as conn:
        conn.execute("INSERT INTO t VALUES (1, 0)")

    assert traced.rows() == 2
    assert traced.seen["PRAGMA synchronous=NORMAL"] == 1
    assert traced.seen["PRAGMA synchronous=FULL"] == 1


def test_a_write_inside_a_write_is_part_of_it(traced: Traced) -> None:
    writer = GroupWriter(traced.connect)
    with writer.write(durable=False) as outer:
        outer.execute("INSERT INTO t VALUES (0, 0)")
        with pytest.raises(KeyError), writer.write(durable=False) as inner:
            inner.execute("INSERT INTO t VALUES (0, 1)")
            raise KeyError("inner")
        with writer.write(durable=False) as inner:
            inner.execute("INSERT INTO t VALUES (0, 2)")

    assert traced.rows() == 2
    assert traced.seen["COMMIT"] == 1


def test_the_level_is_set_when_it_changes_and_only_then(traced: Traced) -> None:
    writer = GroupWriter(traced.connect)
    for n, durable in enumerate([False, False, True, True, False]):
        with writer.write(durable=durable) as conn:
            conn.execute("INSERT INTO t VALUES (0, ?)", (n,))

    assert traced.rows() == 5
    assert traced.seen["PRAGMA synchronous=NORMAL"] == 2
    assert traced.seen["PRAGMA synchronous=FULL"] == 1


# -- writes given as functions (`run`): done by whichever thread has the turn ---------------------


def test_functions_queued_while_a_thread_has_the_turn_are_run_together_by_one_of_their_threads(
    traced: Traced,
) -> None:
    """The point of `run`: no hand-off of the turn between threads within a group; the turn
    goes to the thread of the first function queued, which runs them all in one transaction
    and answers each to its own thread."""
    writer = GroupWriter(traced.connect)
    ran_on: dict[int, int] = {}
    answers: dict[int, int] = {}
    threads: dict[int, int] = {}

    def queue(w: int) -> None:
        threads[w] = threading.get_ident()

        def work(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO t VALUES (?, 0)", (w,))
            ran_on[w] = threading.get_ident()
            return w * 10

        answers[w] = writer.run(work, durable=True)

    queued_while_held(
        writer,
        [functools.partial(queue, w) for w in range(5)],
        lambda conn: conn.execute("INSERT INTO t VALUES (99, 0)"),
    )

    (runner,) = set(ran_on.values())
    assert runner in threads.values()
    assert answers == {w: w * 10 for w in range(5)}
    assert traced.rows() == 6
    assert traced.seen["COMMIT"] <= 2  # this thread's write, then the five together


def test_a_thread_runs_one_group_then_passes_the_turn_to_the_next_queued_and_returns(
    traced: Traced,
) -> None:
    """A thread does not run the groups queued after its own: under a steady stream of
    submits, running them all kept one thread's own answer waiting 30-280 ms."""
    writer = GroupWriter(traced.connect)
    inside_first, go_first, inside_second, go_second = (threading.Event() for _ in range(4))
    ran_on: dict[str, int] = {}
    threads: dict[str, int] = {}
    returned: list[str] = []

    def work(name: str, inside: threading.Event, go: threading.Event) -> Callable[..., None]:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t VALUES (?, 0)", (len(name),))
            ran_on[name] = threading.get_ident()
            inside.set()
            assert go.wait(10)

        return run

    def body(name: str, inside: threading.Event, go: threading.Event) -> None:
        threads[name] = threading.get_ident()
        writer.run(work(name, inside, go), durable=True)
        returned.append(name)

    first = threading.Thread(target=body, args=("first", inside_first, go_first))
    first.start()
    assert inside_first.wait(10)  # the first group runs, holding the turn
    second = threading.Thread(target=body, args=("second!", inside_second, go_second))
    second.start()
    wait_until(lambda: len(writer._queued) == 1, 10.0, "the second function queued")
    go_first.set()
    assert inside_second.wait(10)

    # The second function runs on its own thread while the first thread has returned.
    wait_until(lambda: returned == ["first"], 10.0, "the first thread to return")
    assert ran_on == {"first": threads["first"], "second!": threads["second!"]}
    go_second.set()
    first.join(10)
    second.join(10)
    assert returned == ["first", "second!"]
    assert traced.rows() == 2
    assert traced.seen["COMMIT"] == 2


def test_concurrent_runs_all_land_each_committed_when_it_returns(traced: Traced) -> None:
    writer = GroupWriter(traced.connect)
    unseen: list[int] = []

    def body(w: int) -> None:
        for n in range(WRITES):

            def work(conn: sqlite3.Connection, row: tuple[int, int] = (w, n)) -> None:
                conn.execute("INSERT INTO t VALUES (?, ?)", row)

            writer.run(work, durable=True)
            if traced.rows(w) != n + 1:
                unseen.append(w)

    assert in_threads(THREADS, body) == []

    assert unseen == []
    assert traced.rows() == THREADS * WRITES
    assert traced.seen["COMMIT"] < THREADS * WRITES


def test_a_run_that_raises_raises_in_its_own_thread_and_the_others_are_kept(
    traced: Traced,
) -> None:
    writer = GroupWriter(traced.connect)

    def body(w: int) -> None:
        for n in range(WRITES):

            def work(conn: sqlite3.Connection, row: tuple[int, int] = (w, n)) -> None:
                conn.execute("INSERT INTO t VALUES (?, ?)", row)
                if w % 2:
                    raise ValueError(f"writer {w} fails")

            if w % 4 == 0:
                with writer.write(durable=False) as conn:  # writes and runs, side by side
                    conn.execute("INSERT INTO t VALUES (?, ?)", (w, n))
            else:
                writer.run(work, durable=False)

    errors = in_threads(THREADS, body)

    assert len(errors) == THREADS // 2 and all(isinstance(e, ValueError) for e in errors)
    assert [traced.rows(w) for w in range(THREADS)] == [
        WRITES if w % 2 == 0 else 0 for w in range(THREADS)
    ]


def test_a_run_whose_function_fails_alone_leaves_no_transaction_open(traced: Traced) -> None:
    writer = GroupWriter(traced.connect)

    def fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (0, 0)")
        raise KeyError("nothing stays")

    with pytest.raises(KeyError):
        writer.run(fail, durable=True)

    # Another connection can write at once: the writer holds no open transaction.
    other = sqlite3.connect(traced.path, isolation_level=None, timeout=0.1)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1, 0)")
    other.execute("COMMIT")
    other.close()
    assert traced.rows() == 1


def test_a_run_inside_a_write_is_part_of_it(traced: Traced) -> None:
    writer = GroupWriter(traced.connect)
    with writer.write(durable=False) as outer:
        outer.execute("INSERT INTO t VALUES (0, 0)")
        assert writer.run(lambda conn: conn.execute("INSERT INTO t VALUES (0, 1)").rowcount, False)

    assert traced.rows() == 2
    assert traced.seen["COMMIT"] == 1


class Interrupting(threading.Event):
    """An Event whose `wait` raises KeyboardInterrupt once woken, when told to: a thread
    interrupted just as the turn is passed to it."""

    interrupt = False

    def wait(self, timeout: float | None = None) -> bool:
        woken = super().wait(timeout)
        if self.interrupt:
            raise KeyboardInterrupt
        return woken


def test_a_thread_interrupted_as_the_turn_reaches_it_passes_it_on(traced: Traced) -> None:
    writer = GroupWriter(traced.connect)
    writer._event = Interrupting
    inside, go = threading.Event(), threading.Event()
    outcomes: dict[str, object] = {}

    def hold(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (1, 0)")
        inside.set()
        assert go.wait(10)

    def body(name: str, row: int, work: Callable[[sqlite3.Connection], None] | None) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t VALUES (?, 0)", (row,))

        try:
            writer.run(work or insert, durable=True)
            outcomes[name] = "ran"
        except KeyboardInterrupt as error:
            outcomes[name] = error

    holder = threading.Thread(target=body, args=("holder", 1, hold))
    holder.start()
    assert inside.wait(10)
    interrupted = threading.Thread(target=body, args=("interrupted", 2, None))
    interrupted.start()
    wait_until(lambda: len(writer._queued) == 1, 10.0, "the second function queued")
    writer._queued[0].done.interrupt = True  # type: ignore[attr-defined]
    last = threading.Thread(target=body, args=("last", 3, None))
    last.start()
    wait_until(lambda: len(writer._queued) == 2, 10.0, "the third function queued")
    go.set()

    wait_until(lambda: len(outcomes) == 3, 10.0, "every thread to return")
    assert outcomes["holder"] == "ran" and outcomes["last"] == "ran"
    assert isinstance(outcomes["interrupted"], KeyboardInterrupt)
    assert [traced.rows(w) for w in (1, 2, 3)] == [1, 0, 1]
    for thread in (holder, interrupted, last):
        thread.join(10)


class InterruptedWait:
    """The writer's turn lock, but a blocking wait for it raises KeyboardInterrupt when told
    to: a `write` interrupted while it waits for the turn."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.interrupt = False

    def acquire(self, blocking: bool = True) -> bool:
        if blocking and self.interrupt:
            self.interrupt = False
            raise KeyboardInterrupt
        return self.lock.acquire(blocking)

    def release(self) -> None:
        self.lock.release()


def test_a_write_interrupted_while_it_waits_for_the_turn_holds_up_no_group(
    traced: Traced,
) -> None:
    writer = GroupWriter(traced.connect)
    turn = InterruptedWait()
    writer._turn = turn  # type: ignore[assignment]  # acquire and release, as a Lock
    inside, go = threading.Event(), threading.Event()
    returned: list[str] = []

    def hold(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (1, 0)")
        inside.set()
        assert go.wait(10)

    def insert(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (2, 0)")

    holder = threading.Thread(target=lambda: returned.append(str(writer.run(hold, True))))
    holder.start()
    assert inside.wait(10)
    turn.interrupt = True
    with pytest.raises(KeyboardInterrupt), writer.write(durable=True):
        pass
    queued = threading.Thread(target=lambda: returned.append(str(writer.run(insert, True))))
    queued.start()
    wait_until(lambda: len(writer._queued) == 1, 10.0, "the next function queued")
    go.set()

    wait_until(lambda: len(returned) == 2, 10.0, "both runs to return")
    assert traced.rows() == 2
    holder.join(10)
    queued.join(10)


class Joined:
    """A write whose class has a `together`: rows (writer, n) put in by one statement for all."""

    calls: list[int]  # how many were done by each call of `together`
    fail_together = False

    def __init__(self, writer: int) -> None:
        self.writer = writer

    def __call__(self, conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t VALUES (?, 1)", (self.writer,))
        if self.writer == 3:
            raise ValueError("writer 3 fails")
        return self.writer * 10

    @staticmethod
    def together(conn: sqlite3.Connection, works: list[Joined]) -> list[int | ValueError]:
        Joined.calls.append(len(works))
        conn.executemany("INSERT INTO t VALUES (?, 1)", [(w.writer,) for w in works])
        if Joined.fail_together:
            raise sqlite3.OperationalError("together fails: none of its rows may stay")
        conn.execute("DELETE FROM t WHERE writer = 3 AND n = 1")  # as writer 3's alone: none
        return [ValueError("writer 3 fails") if w.writer == 3 else w.writer * 10 for w in works]


@pytest.mark.parametrize("fail_together", [False, True])
def test_queued_functions_of_a_class_with_together_are_done_by_it_in_one_call(
    traced: Traced, fail_together: bool
) -> None:
    """Each thread gets what its own function alone would give (writer 3's error, the others'
    answers), whether `together` did them in one call or, when it raised, each was run alone
    with nothing of the failed call left."""
    writer = GroupWriter(traced.connect)
    Joined.calls, Joined.fail_together = [], fail_together
    answers: dict[int, int | BaseException] = {}

    def queue(w: int) -> None:
        try:
            answers[w] = writer.run(Joined(w), durable=True)
        except ValueError as error:
            answers[w] = error

    queued_while_held(
        writer,
        [functools.partial(queue, w) for w in range(5)],
        lambda conn: conn.execute("INSERT INTO t VALUES (99, 0)"),
    )

    assert Joined.calls == [5]
    assert {w: a for w, a in answers.items() if w != 3} == {w: w * 10 for w in (0, 1, 2, 4)}
    assert isinstance(answers[3], ValueError)
    assert [traced.rows(w) for w in range(5)] == [1, 1, 1, 0, 1]
    assert traced.rows() == 5
