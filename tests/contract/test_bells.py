"""Doorbells (`fanout.backends.sqlite.bells`): storing chunks or a completion event wakes the
idle worker or the notifier at once, not at its next poll; and a bell that cannot ring (nobody
listening, no FIFO, a full pipe, a file in its place) never blocks, raises or loses work, since
the polls stay.

The wake-up tests make the polls far slower than their deadlines (30 s between a worker's idle
polls, or the notifier's), so only the bell can finish the job in time. In tests/contract/ so
that the mutation run (which mutates `fanout/backends/sqlite/*`) judges `bells.py` by them."""

from __future__ import annotations

import os
import resource
import select
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fanout.backends.sqlite.bells import Bell
from fanout.models import JobStatus, TenantId
from fanout.ports import Listener
from fanout.service import Fanout, JobRequest
from fanout.settings import Settings
from fanout.wiring import build
from fanout.workers import chunk_worker, notifier
from tests.e2e.harness import Receiver
from tests.waiting import wait_until

TENANT = TenantId("tenant-a")
SLOW_POLL = 30.0


@pytest.fixture
def heard(tmp_path: Path) -> Iterator[tuple[Bell, Listener]]:
    """A bell and a listener to it, closed after the test."""
    bell = Bell(tmp_path / "a.bell")
    listener = bell.listen()
    assert listener is not None
    yield bell, listener
    listener.close()
    bell.close()


def test_a_ring_wakes_a_listener_and_only_a_ring_does(heard: tuple[Bell, Listener]) -> None:
    bell, listener = heard
    assert not listener.wait(0.05)  # nothing rang: the timeout passes
    bell.ring()
    assert listener.wait(10.0)
    assert not listener.drain()  # that ring was taken


def test_a_listener_blocked_in_its_wait_wakes_at_a_ring_and_takes_it(
    heard: tuple[Bell, Listener],
) -> None:
    bell, listener = heard
    threads: list[int] = []
    woken: list[bool] = []

    def waiter() -> None:
        threads.append(threading.get_native_id())
        woken.append(listener.wait(30.0))

    thread = threading.Thread(target=waiter)
    try:
        thread.start()
        wait_until(lambda: threads and _in_poll(threads[0]), 10.0, "the listener to block")
        bell.ring()
        thread.join(10.0)
        assert woken == [True]
        assert not listener.wait(0.0)  # it took the ring: one ring wakes it once
    finally:
        bell.ring()  # a waiter still blocked (the assertions failed) ends now
        thread.join(10.0)


def _in_poll(thread: int) -> bool:
    """Whether the thread sleeps in poll(2) (Linux: its kernel wait channel)."""
    try:
        return "poll" in Path(f"/proc/self/task/{thread}/wchan").read_text()
    except OSError:
        return False


def test_a_wait_lasts_its_timeout_when_nothing_rings(heard: tuple[Bell, Listener]) -> None:
    """An idle worker's wait is its backoff: it must not return early and poll in a loop."""
    _, listener = heard
    started = time.monotonic()
    assert not listener.wait(0.2)
    assert time.monotonic() - started >= 0.19


def test_a_bell_holds_one_descriptor_however_often_rung_and_none_once_closed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.bell"
    bell = Bell(path)
    listener = bell.listen()
    assert listener is not None
    try:
        for _ in range(50):
            bell.ring()
        assert _descriptors_of(path) == 2  # the listener's and the ringer's
        bell.close()
        assert _descriptors_of(path) == 1
        bell.ring()  # opened again
        assert listener.wait(10.0)
    finally:
        bell.close()
        listener.close()
    assert _descriptors_of(path) == 0
    listener.close()  # twice: nothing to close, nothing raised
    assert not listener.drain()  # closed: nothing more to hear


def _descriptors_of(path: Path) -> int:
    """How many of this process's descriptors are open on `path` (Linux: /proc/self/fd)."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            count += os.readlink(fd) == str(path)
        except OSError:
            continue
    return count


def test_a_ring_from_another_process_wakes_the_listener(tmp_path: Path) -> None:
    path = tmp_path / "a.bell"
    listener = Bell(path).listen()
    assert listener is not None
    try:
        code = "import sys; from pathlib import Path; from fanout.backends.sqlite.bells import Bell"
        code += "; Bell(Path(sys.argv[1])).ring()"
        subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
        assert listener.wait(10.0)
    finally:
        listener.close()


def test_a_ring_wakes_every_listener_and_rings_piled_up_wake_once(tmp_path: Path) -> None:
    """Two workers' listeners: one ring makes both readable (each wakes; one takes it). Rings
    made while nobody waited (a busy worker: under load, one a job) wake a listener once, not
    once each."""
    bell = Bell(tmp_path / "a.bell")
    first, second = bell.listen(), bell.listen()
    assert first is not None and second is not None
    try:
        bell.ring()
        both = select.poll()
        for listener in (first, second):
            both.register(listener.fileno(), select.POLLIN)
        ready = both.poll(10_000)
        assert sorted(fd for fd, _ in ready) == sorted([first.fileno(), second.fileno()])
        assert first.drain()
        assert not second.drain()

        for _ in range(1000):
            bell.ring()
        assert first.wait(0.0)
        assert not first.wait(0.0)
        assert not second.wait(0.0)
    finally:
        first.close()
        second.close()


def test_ringing_a_bell_nobody_made_or_listens_to_does_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.bell"
    Bell(path).ring()  # not made yet
    assert not path.exists()
    os.mkfifo(path)
    Bell(path).ring()  # made, but nobody listens: the open fails without blocking


def test_a_bell_whose_listeners_went_away_rings_for_the_next_one(tmp_path: Path) -> None:
    """A server keeps the pipe open to ring it; its notifier restarting (a new listener) must
    still hear it."""
    bell = Bell(tmp_path / "a.bell")
    first = bell.listen()
    assert first is not None
    bell.ring()
    assert first.wait(10.0)
    first.close()
    bell.ring()  # nobody listens: the write fails (EPIPE) without raising
    bell.ring()
    bell.close()  # and closing the pipe kept for ringing does not stop the next ring
    bell.close()
    second = bell.listen()
    assert second is not None
    try:
        assert not second.drain()
        bell.ring()
        assert second.wait(10.0)
    finally:
        second.close()


def test_a_full_pipe_neither_blocks_nor_raises(heard: tuple[Bell, Listener]) -> None:
    bell, listener = heard
    for _ in range(70_000):  # past a pipe's 64 KiB
        bell.ring()
    assert listener.drain()
    assert not listener.drain()


def test_a_file_in_the_bells_place_is_not_listened_to_nor_written(tmp_path: Path) -> None:
    path = tmp_path / "a.bell"
    path.write_bytes(b"")
    assert Bell(path).listen() is None
    Bell(path).ring()
    assert path.read_bytes() == b""


def test_a_listener_past_descriptor_1023_still_waits(tmp_path: Path) -> None:
    """`fanout serve` holds a descriptor per connection: select() cannot wait on one past 1023."""
    bell = Bell(tmp_path / "a.bell")
    held: list[int] = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        listener = bell.listen()
        assert listener is not None and listener.fileno() > 1023
        try:
            assert not listener.wait(0.01)
            bell.ring()
            assert listener.wait(10.0)
        finally:
            listener.close()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_where_no_bell_can_be_made_there_is_no_listener(tmp_path: Path) -> None:
    assert Bell(tmp_path / "missing" / "a.bell").listen() is None


def test_the_database_bells_sit_beside_it(service: Fanout, settings: Settings) -> None:
    for listen, name in (
        (service.listen_for_chunks, "-chunks.bell"),
        (service.listen_for_events, "-events.bell"),
    ):
        listener = listen()
        assert listener is not None
        listener.close()
        bell = settings.database.parent / (settings.database.name + name)
        assert bell.is_fifo()
        assert stat.S_IMODE(bell.stat().st_mode) == 0o600  # nobody else may ring or listen


@pytest.fixture
def slow_service(settings: Settings) -> Fanout:
    return build(settings.model_copy(update={"poll_interval": SLOW_POLL}))


@pytest.fixture
def idle_worker(slow_service: Fanout) -> Iterator[None]:
    """A worker thread that has polled once, found nothing, and waits out a 30 s poll."""
    stop = threading.Event()
    worker = threading.Thread(target=chunk_worker.run, args=(slow_service, stop), daemon=True)
    worker.start()
    yield
    stop.set()
    slow_service.backend.wakeups.ring_chunks()  # type: ignore[union-attr]  # SQLite has them
    worker.join(10)


def test_an_idle_worker_starts_a_new_job_when_its_chunks_are_stored(
    slow_service: Fanout, idle_worker: None
) -> None:
    request = JobRequest(task="echo", items=list(range(5)), params={}, chunk_size=5)
    job, _ = slow_service.submit(TENANT, request)

    def done() -> bool:
        found = slow_service.get(TENANT, job.id)
        return found.status is JobStatus.SUCCEEDED

    wait_until(done, 10.0, "the job to be run by the worker the submit woke")


def test_the_notifier_sends_a_webhook_when_its_event_is_stored(
    service: Fanout, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notifier, "POLL_INTERVAL", SLOW_POLL)
    running = notifier.Notifier(service)
    running.start()
    try:
        wait_until(lambda: running.reads >= 1, 10.0, "the notifier's first read")
        request = JobRequest(
            task="echo", items=[1], params={}, webhook_url=receiver.url, chunk_size=1
        )
        stop = threading.Event()
        worker = threading.Thread(target=chunk_worker.run, args=(service, stop), daemon=True)
        worker.start()
        try:
            service.submit(TENANT, request)
            [delivery] = receiver.wait_for(1, 10.0)
        finally:
            stop.set()
            worker.join(10)
        assert delivery.headers["webhook-id"]
    finally:
        running.stop()
