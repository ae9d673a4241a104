"""The one-machine runtime: worker processes under a supervisor, and the background parts the
backend needs (the notifier engine of `fanout.workers.notifier`, reconciler, lease sweep; on AWS
also the stream aggregator and the notice poller). `fanout serve` runs the background parts in a
process of their own, under a supervisor too, as AWS runs them in functions of their own: in
the API's process they took turns for its one interpreter lock with the event loop, and a write
transaction of theirs, waiting for that lock between statements, held the store's write lock
meanwhile. `fanout worker`, with no API, runs them on threads of its own process.

Worker processes are forked from a forkserver that has already imported fanout and the task
modules, so replacing a dead worker costs milliseconds; so is the background process (a spawned
one was a fresh interpreter that also re-imported `fanout serve`'s command line, typer and
rich, for nothing: 6 MB). Each names itself (`fanout-worker`, `fanout-bg`: what `top` and `ps -e`
show), and ends when the supervisor's process is gone. Each worker gets an
owner token of its own; when one dies, the messages it held are made visible at once instead of
after their visibility timeout; their receive counts stand, so a chunk that keeps killing
workers still reaches the dead letters and is split. No loop and no supervisor dies of a store
error: each logs it, backs off and tries again, so processing resumes by itself once the store
can write again.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Protocol

from fanout import logs, tasks
from fanout.service import Fanout
from fanout.settings import Settings
from fanout.wiring import build
from fanout.workers import chunk_worker

log = logging.getLogger("fanout.runtime")
MAX_BACKOFF = 5.0  # seconds, between tries of a failing loop and between quick respawns
QUICK_EXIT = 2.0  # a worker that exits sooner than this after its start is respawned later
ORPHAN_CHECK = 0.5  # seconds between the background process's looks at its supervisor
# Process names (`/proc/self/comm`, at most 15 bytes), as `top`, `ps -e` and the tests see them.
WORKER_NAME, BACKGROUND_NAME = "fanout-worker", "fanout-bg"


def name_process(name: str) -> None:
    """Name this process where the system allows it (Linux); elsewhere keep the name."""
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text(name)


def process_name(pid: int) -> str | None:
    """The name of process `pid` (Linux), None when there is none (or no way to tell)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def _worker_process(settings: Settings, supervisor: int, owner: str, ready: Event) -> None:
    name_process(WORKER_NAME)
    logs.configure(settings)  # a fresh interpreter: the parent's logging is not inherited
    service = build(settings)
    ready.set()
    chunk_worker.main(service, supervisor, owner)


def _background_process(settings: Settings, supervisor: int, owner: str, ready: Event) -> None:
    """The background parts until SIGTERM (the supervisor's stop), or until the supervisor's
    process is gone (then this one is an orphan nobody stops). Stopping lets the
    notifier hand back the claims of attempts it cannot finish. SIGINT, which a terminal sends
    to the whole process group, is left to the parent, which stops this process in turn."""
    name_process(BACKGROUND_NAME)
    logs.configure(settings)
    tasks.load(settings.tasks, settings.app_dir)  # reducers run where jobs are finalized
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parts = background(build(settings))
    for part in parts:
        part.start()
    ready.set()
    while not stop.wait(ORPHAN_CHECK) and chunk_worker.alive(supervisor):
        pass
    for part in reversed(parts):
        part.stop()


@dataclass(frozen=True)
class Kind:
    """What a supervisor's processes run: `target(settings, supervisor pid, owner token, ready)`
    (setting `ready` once it is up), under the process name `title`; `holds_chunks` when a dead
    one's chunks are to be handed back."""

    name: str
    target: Callable[[Settings, int, str, Event], None]
    title: str
    holds_chunks: bool


WORKERS = Kind("worker", _worker_process, WORKER_NAME, holds_chunks=True)
BACKGROUND = Kind("background process", _background_process, BACKGROUND_NAME, holds_chunks=False)


def quick_backoff(quick_exits: int) -> float:
    """Seconds a slot waits before respawning after its `quick_exits`-th quick exit in a row."""
    return min(MAX_BACKOFF, 0.1 * 2.0**quick_exits)


@dataclass
class Slot:
    """One of the supervisor's places for a worker: the process in it now and, after quick
    exits, when it may start the next one (the backoff is the slot's, so one slot dying again
    and again never delays another slot's respawn)."""

    process: BaseProcess
    owner: str
    started: float
    quick_exits: int = 0
    respawn_at: float | None = None  # set while the slot's process is dead
    ready: Event | None = None  # set by the process once it is up


class Supervisor:
    """Keeps `count` processes of `kind` (workers by default) alive until stopped. `quick_exit`,
    `backoff` and `clock` are the respawn policy (tests give their own to make a slot wait for
    minutes)."""

    def __init__(
        self,
        settings: Settings,
        service: Fanout,
        count: int,
        *,
        kind: Kind = WORKERS,
        quick_exit: float = QUICK_EXIT,
        backoff: Callable[[int], float] = quick_backoff,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.service = service
        self.count = count
        self.kind = kind
        self.quick_exit = quick_exit
        self.backoff = backoff
        self.clock = clock
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(
            ["fanout.wiring", "fanout.workers.chunk_worker", *settings.tasks]
        )
        self.slots: list[Slot] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self.restarts = 0

    def start(self) -> None:
        self.slots = [self._spawn() for _ in range(self.count)]
        self.thread.start()

    def _spawn(self, quick_exits: int = 0) -> Slot:
        owner = f"{os.getpid()}-{secrets.token_hex(6)}"
        ready = self.context.Event()
        process = self.context.Process(
            target=self.kind.target,
            args=(self.settings, os.getpid(), owner, ready),
            name=f"fanout-{self.kind.name.replace(' ', '-')}",
            daemon=True,
        )
        process.start()
        return Slot(process, owner, self.clock(), quick_exits, ready=ready)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the first processes are up (at most `timeout` seconds); whether they are.
        `fanout serve` waits for its background process before it answers: started beside the
        first job, its start (~0.35 s of CPU) took a core from that job's workers."""
        deadline = time.monotonic() + timeout
        return all(
            slot.ready is not None and slot.ready.wait(max(0.0, deadline - time.monotonic()))
            for slot in self.slots
        )

    def _watch(self) -> None:
        while not self.stopping.wait(0.05):
            try:
                self._replace_dead()
            except Exception:  # never let the supervisor die: log, back off, look again
                log.exception("supervising the workers failed; trying again")
                self.stopping.wait(MAX_BACKOFF)

    def _replace_dead(self) -> None:
        for i, slot in enumerate(self.slots):
            if self.stopping.is_set():
                return
            if slot.respawn_at is None and not self._running(slot):
                self._bury(slot)
            if slot.respawn_at is not None and self.clock() >= slot.respawn_at:
                self.slots[i] = self._spawn(slot.quick_exits)
                self.restarts += 1

    def _running(self, slot: Slot) -> bool:
        """Whether the slot's process runs. multiprocessing learns a forked process's end from
        the forkserver that forked it, so when the forkserver itself has died it reports its
        processes ended while they run on: then the process's id still carrying the kind's
        name says it runs (and the next start brings a new forkserver)."""
        if slot.process.is_alive():
            return True
        pid = slot.process.pid
        return pid is not None and process_name(pid) == self.kind.title

    def _bury(self, slot: Slot) -> None:
        """Hand back what the dead process held, at once (it waits for no respawn), and set
        when its slot respawns: now, or after a backoff if it died soon after its start."""
        process = slot.process
        log.warning(
            "%s %s exited with %s; starting another", self.kind.name, process.pid, process.exitcode
        )
        if self.kind.holds_chunks:
            self._reclaim(slot.owner)
        now = self.clock()
        if now - slot.started < self.quick_exit:
            # Dying at once again and again (say, the store cannot open): slow down.
            slot.quick_exits += 1
            slot.respawn_at = now + self.backoff(slot.quick_exits)
        else:
            slot.quick_exits = 0
            slot.respawn_at = now

    def _reclaim(self, owner: str) -> None:
        """Hand back what a dead worker held; if the store cannot write now, the lease sweep
        does it once the worker's heartbeat is old enough."""
        try:
            self.service.reclaim(owner)
        except Exception as error:
            log.warning("could not hand back the chunks of worker %s yet: %s", owner, error)

    def live(self) -> int:
        """Processes alive now (the workers': for `/metrics`)."""
        return sum(self._running(slot) for slot in self.slots)

    def pids(self) -> list[int]:
        return [slot.process.pid for slot in self.slots if slot.process.pid is not None]

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join()
        for slot in self.slots:
            self._signal(slot, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for slot in self.slots:
            slot.process.join(max(0.0, deadline - time.monotonic()))
            while self._running(slot) and time.monotonic() < deadline:
                time.sleep(0.05)  # a process the dead forkserver forked: no one to join it
            if self._running(slot):
                self._signal(slot, signal.SIGKILL)
                slot.process.join()
            if self.kind.holds_chunks:
                self._reclaim(slot.owner)

    def _signal(self, slot: Slot, signum: signal.Signals) -> None:
        if self._running(slot) and slot.process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(slot.process.pid, signum)


class Loop:
    """A daemon thread calling `step` every `interval` seconds until stopped. A failing step is
    logged (the first failure, then every 100th) and retried with exponential backoff up to
    MAX_BACKOFF seconds; the loop itself never ends but by `stop`."""

    def __init__(self, name: str, interval: float, step: Callable[[], None]) -> None:
        self.interval = interval
        self.step = step
        self.failures = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(self._wait()):
            try:
                self.step()
            except Exception:
                self.failures += 1
                if self.failures == 1 or self.failures % 100 == 0:
                    log.exception("%s failed (%d in a row)", self.thread.name, self.failures)
            else:
                if self.failures:
                    log.warning("%s works again", self.thread.name)
                self.failures = 0

    def _wait(self) -> float:
        if not self.failures:
            return self.interval
        backoff: float = min(MAX_BACKOFF, 0.05 * 2**self.failures)
        return max(self.interval, backoff)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()


class Part(Protocol):
    """A background part of the runtime: a Loop, the notifier engine."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def background(service: Fanout) -> list[Part]:
    """The parts the backend needs beside the worker processes, to start in this order (and
    stop in the reverse). Where notices announce each event (AWS), the notice poller feeds the
    notifier engine, and the sweep of overdue events runs as its schedule would."""
    from fanout.workers.notifier import Notifier

    settings = service.settings
    parts: list[Part] = [
        Loop("reconciler", settings.reconcile_interval, service.reconcile),
        Loop("leases", settings.owner_heartbeat, _sweep(service)),
    ]
    if service.purges:
        parts.append(Loop("retention", settings.purge_interval, _purge(service)))
    if service.counts_by_stream or service.announces_events:
        from fanout.workers.aws_pollers import pollers

        return parts + pollers(service)
    return [Notifier(service), *parts]


def _purge(service: Fanout) -> Callable[[], None]:
    def step() -> None:
        service.purge()

    return step


def _sweep(service: Fanout) -> Callable[[], None]:
    def step() -> None:
        service.reclaim()

    return step
