"""The chunk worker: receive a chunk, run it, record it; dead letters when there is nothing else.

While a chunk runs, a heartbeat extends its visibility timeout (as SQS consumers do with
ChangeMessageVisibility). A chunk still running after `chunk_timeout` has hung its worker: the
heartbeat ends the process, the supervisor starts another, and the chunk comes back until it
dead-letters and is split.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from types import FrameType

from fanout.models import Delivery
from fanout.service import Fanout

log = logging.getLogger("fanout.worker")
HUNG_EXIT_CODE = 75


class Heartbeat:
    def __init__(self, service: Fanout, delivery: Delivery) -> None:
        self.service = service
        self.delivery = delivery
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    def _beat(self) -> None:
        settings = self.service.settings
        deadline = time.monotonic() + settings.chunk_timeout
        while not self.done.wait(settings.visibility_timeout / 3):
            if time.monotonic() > deadline:
                log.error(
                    "chunk %s ran past %ss; ending this worker",
                    self.delivery.chunk,
                    settings.chunk_timeout,
                )
                os._exit(HUNG_EXIT_CODE)
            self.service.backend.queue.extend(self.delivery.receipt, settings.visibility_timeout)


def poll_once(service: Fanout) -> bool:
    """Process one chunk, or else one dead letter. Returns False when both queues were empty."""
    queue, timeout = service.backend.queue, service.settings.visibility_timeout
    for delivery in queue.receive(1, timeout):
        with Heartbeat(service, delivery):
            service.process(delivery)
        return True
    for delivery in queue.receive_dead(1, timeout):
        service.process_dead_letter(delivery)
        return True
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def run(service: Fanout, stop: threading.Event, supervisor: int | None = None) -> None:
    """Poll until `stop` is set, or the supervisor process is gone (a worker outliving it would
    go on taking chunks nobody watches). Idle polls back off from `poll_interval` to 10 times
    that."""
    idle = 0
    while not stop.is_set() and (supervisor is None or _alive(supervisor)):
        if poll_once(service):
            idle = 0
        else:
            idle = min(idle + 1, 10)
            stop.wait(service.settings.poll_interval * idle)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(service: Fanout, supervisor: int) -> None:
    """A worker process's body: SIGTERM abandons the current chunk, which is handed back."""
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run(service, threading.Event(), supervisor)
    except SystemExit:
        release = getattr(service.backend.queue, "release_owner", None)
        if release is not None:
            release(os.getpid())
