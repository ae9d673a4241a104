"""The chunk worker: receive a chunk, run it, record it; dead letters when there is nothing else.

While a chunk runs, a heartbeat extends its visibility timeout (as SQS consumers do with
ChangeMessageVisibility). A chunk still running after `chunk_timeout` has hung its worker: the
heartbeat ends the process, the supervisor starts another, and the chunk comes back until it
dead-letters and is split.

While chunks run quickly, a worker takes them a batch at a time (as Lambda's SQS event source
does): each receive is a write transaction in the store, or a request to SQS, and for a chunk of
a few no-op items the larger part of its cost. After a chunk that was not quick it hands back the
rest of its batch at once and goes back to taking one at a time, so a chunk held in a batch
waits only for quick ones, never for a slow one, and never towards its visibility timeout.

Each worker process has an owner token, new for each process life (a pid is reused), and says
every `owner_heartbeat` seconds that it is alive: what a dead worker held is handed back as soon
as it is known dead. A store error never ends the loop: the chunk is handed back, and the worker
backs off and tries again. A hand-back that fails too (the disk is full) is tried again before
each later poll, so the chunk runs as soon as the store writes again rather than after its
visibility timeout.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType

from fanout.models import Delivery
from fanout.service import Fanout

log = logging.getLogger("fanout.worker")
HUNG_EXIT_CODE = 75
MAX_BACKOFF = 5.0  # seconds between tries while the store keeps failing
BATCH = 10  # chunks one receive takes at most (SQS's limit); only while chunks are quick
QUICK = 0.05  # seconds: a chunk run (and recorded) within this is quick


class Heartbeat:
    """While a chunk runs: extend its visibility every third of the visibility timeout, and end
    the process at the first beat past `chunk_timeout`. One beater thread per process serves
    every heartbeat; starting a thread for each chunk cost more than a small chunk's items."""

    def __init__(self, service: Fanout, delivery: Delivery) -> None:
        self.service = service
        self.delivery = delivery
        self.interval = service.settings.visibility_timeout / 3
        self.deadline = self.next_beat = 0.0

    def __enter__(self) -> Heartbeat:
        now = time.monotonic()
        self.deadline = now + self.service.settings.chunk_timeout
        self.next_beat = now + self.interval
        self.beater = _join_beater(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.beater.remove(self)  # waits out a beat in progress: none comes after this returns

    def beat(self) -> None:
        settings = self.service.settings
        if time.monotonic() > self.deadline:
            log.error(
                "chunk %s ran past %ss; ending this worker",
                self.delivery.chunk,
                settings.chunk_timeout,
            )
            os._exit(HUNG_EXIT_CODE)
        self.service.extend(self.delivery)
        self.next_beat = time.monotonic() + self.interval


class _Beater:
    """The process's heartbeat thread: beats each active heartbeat when it is due. It holds the
    lock while beating, so adding or removing a heartbeat waits for a beat in progress.

    It is woken only for a heartbeat due before it would wake anyway: idle, it looks every
    `idle` seconds (the shortest interval yet), since a wake-up per chunk would cost a GIL
    hand-off per chunk."""

    def __init__(self, first: Heartbeat) -> None:
        self.active = {first}
        self.idle = first.interval
        self.wake_at = first.next_beat
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self.thread.start()

    def add(self, heartbeat: Heartbeat) -> None:
        with self.changed:
            self.active.add(heartbeat)
            self.idle = min(self.idle, heartbeat.interval)
            if heartbeat.next_beat < self.wake_at:
                self.changed.notify()

    def remove(self, heartbeat: Heartbeat) -> None:
        with self.changed:
            self.active.discard(heartbeat)

    def _run(self) -> None:
        with self.changed:
            while True:
                for heartbeat in [h for h in self.active if h.next_beat <= time.monotonic()]:
                    try:
                        heartbeat.beat()
                    except Exception:  # one failed extend must not end every later heartbeat
                        log.exception("heartbeat of chunk %s failed", heartbeat.delivery.chunk)
                        heartbeat.next_beat = time.monotonic() + heartbeat.interval
                now = time.monotonic()
                self.wake_at = min((h.next_beat for h in self.active), default=now + self.idle)
                self.changed.wait(max(0.0, self.wake_at - now))


_beater_lock = threading.Lock()
_the_beater: _Beater | None = None


def _join_beater(heartbeat: Heartbeat) -> _Beater:
    """The process's beater, now beating `heartbeat` too (started by the first heartbeat)."""
    global _the_beater
    with _beater_lock:
        if _the_beater is None:
            _the_beater = _Beater(heartbeat)
        else:
            _the_beater.add(heartbeat)
        return _the_beater


def _forget_beater() -> None:
    """A forked child has no beater thread, whatever its parent had."""
    global _beater_lock, _the_beater
    _beater_lock, _the_beater = threading.Lock(), None


os.register_at_fork(after_in_child=_forget_beater)


class HandBacks:
    """The deliveries whose hand-back failed, owed to the queue. Each is handed back before the
    next poll, until that succeeds or the queue has surely given it out again by itself."""

    def __init__(self) -> None:
        self.owed: dict[str, tuple[Delivery, float]] = {}

    def owe(self, delivery: Delivery, visibility_timeout: float) -> None:
        # The last extend was at most a third of the timeout ago (the heartbeat's interval), so
        # the message stays invisible for at least half of it from now: until then, its receipt
        # is still this worker's.
        self.owed[delivery.receipt] = (delivery, time.monotonic() + visibility_timeout / 2)

    def settle(self, service: Fanout) -> None:
        """Hand back what is owed; raises the store's error while it still cannot write."""
        for receipt, (delivery, until) in list(self.owed.items()):
            if time.monotonic() < until:
                service.hand_back(delivery)
                log.info("handed back %s", delivery)
            del self.owed[receipt]


class Pace:
    """How many chunks the next receive takes: BATCH after a batch whose chunks were all
    quick, one after a chunk that was not (and to begin with)."""

    def __init__(self) -> None:
        self.size = 1

    def ran(self, all_quick: bool) -> None:
        self.size = BATCH if all_quick else 1


def poll_once(
    service: Fanout, owner: str = "", owed: HandBacks | None = None, pace: Pace | None = None
) -> bool:
    """Process the chunks of one receive (one, or with `pace` as many as it says), or else one
    dead letter. Returns False when both queues were empty. A chunk whose processing failed is
    handed back before the error is raised, with the rest of its batch; if that fails too, they
    go to `owed`, which is settled first at the next call."""
    owed = owed if owed is not None else HandBacks()
    owed.settle(service)
    deliveries = service.receive(owner, pace.size if pace is not None else 1)
    if deliveries:
        all_quick = _process_batch(service, deliveries, owed)
        if pace is not None:
            pace.ran(all_quick)
        return True
    for delivery in service.receive_dead_letters(owner):
        _process(service, delivery, service.process_dead_letter, owed)
        return True
    return False


def _process_batch(service: Fanout, deliveries: Sequence[Delivery], owed: HandBacks) -> bool:
    """Process received chunks in turn; whether all were quick. After one that was not, or
    one that failed, the rest are handed back at once: visible to every worker again."""
    for done, delivery in enumerate(deliveries, 1):
        started = time.monotonic()
        try:
            with Heartbeat(service, delivery):
                _process(service, delivery, service.process, owed)
        except Exception:  # not SIGTERM's SystemExit: then `main` hands back all it holds
            _hand_back(service, deliveries[done:], owed)
            raise
        if time.monotonic() - started > QUICK:
            _hand_back(service, deliveries[done:], owed)
            return False
    return True


def _hand_back(service: Fanout, deliveries: Sequence[Delivery], owed: HandBacks) -> None:
    for delivery in deliveries:
        try:
            service.hand_back(delivery)
        except Exception:
            log.warning("could not hand back %s; trying again before the next poll", delivery)
            owed.owe(delivery, service.settings.visibility_timeout)


def _process(
    service: Fanout, delivery: Delivery, process: Callable[[Delivery], None], owed: HandBacks
) -> None:
    try:
        process(delivery)
    except Exception:
        _hand_back(service, [delivery], owed)
        raise


def alive(pid: int) -> bool:
    """Whether a process with this id exists (the supervisor's: a worker outliving it stops)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class OwnerBeat:
    """Says every `owner_heartbeat` seconds that this worker is alive, from a thread of its own
    (a chunk may run for minutes). A failed beat is logged and tried again at the next."""

    def __init__(self, service: Fanout, owner: str) -> None:
        self.service = service
        self.owner = owner
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="owner-heartbeat", daemon=True)

    def start(self) -> None:
        self._beat()  # before the first receive: a sweep must never find the owner unknown
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(self.service.settings.owner_heartbeat):
            self._beat()

    def _beat(self) -> None:
        try:
            self.service.heartbeat(self.owner)
        except Exception as error:
            log.warning("worker heartbeat failed: %s", error)

    def stop(self) -> None:
        self.stopping.set()


def run(
    service: Fanout, stop: threading.Event, supervisor: int | None = None, owner: str = ""
) -> None:
    """Poll until `stop` is set, or the supervisor process is gone (a worker outliving it would
    go on taking chunks nobody watches). Idle polls back off from `poll_interval` to 5 times
    that, or until the queue's bell rings; failing ones (the store cannot write) up to
    `MAX_BACKOFF` seconds."""
    idle = failures = 0
    owed, pace = HandBacks(), Pace()
    # Chunks put in the queue ring it: an idle worker starts them at once, not at its next poll.
    bell = service.listen_for_chunks()
    try:
        while not stop.is_set() and (supervisor is None or alive(supervisor)):
            try:
                busy = poll_once(service, owner, owed, pace)
            except Exception:
                failures += 1
                if failures == 1 or failures % 100 == 0:
                    log.exception("processing failed (%d in a row); backing off", failures)
                stop.wait(min(MAX_BACKOFF, service.settings.poll_interval * 2**failures))
                continue
            failures = 0
            if busy:
                idle = 0
            else:
                idle = min(idle + 1, 5)
                if bell is None:
                    stop.wait(service.settings.poll_interval * idle)
                else:
                    bell.wait(service.settings.poll_interval * idle)
    finally:
        if bell is not None:
            bell.close()


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(service: Fanout, supervisor: int, owner: str) -> None:
    """A worker process's body: SIGTERM abandons the current chunk, which is handed back."""
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    beat = OwnerBeat(service, owner)
    beat.start()
    try:
        run(service, threading.Event(), supervisor, owner)
    except SystemExit:
        beat.stop()
        try:
            service.reclaim(owner)
        except Exception:
            log.exception("could not hand back this worker's chunks; they come back later")
