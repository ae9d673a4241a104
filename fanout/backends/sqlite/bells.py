"""Doorbells: a process that stores work rings, and a process waiting for that kind of work
wakes at once, not at its next poll.

On one machine the workers poll the queue and the notifier polls the outbox. A poll costs a
store read, so when idle they poll every 20-100 ms: an idle server took 10-80 ms to start a new
job's first chunk and up to 20 ms more to send its webhook (a 10-item job, POST to webhook:
81 ms at the median). Each bell is a named pipe (FIFO) beside the database. A listener holds it
open for reading and writing (so it never reads an end of file, and a ringer's open never
blocks); a ringer opens it without blocking and writes a byte, keeping it open for the next
ring while someone listens. A bell nobody listens to, one that cannot be made (a full disk, a
read-only directory) or a full pipe just leaves the ring unheard: the polls stay, as the floor.
Under load the rings pile up in the pipe while everyone is busy, and wake a listener once. No
lock is shared between processes, so a SIGKILL at any instant leaves nothing held.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import stat
import threading
from pathlib import Path

from fanout.ports import Listener

_DRAIN = 4096


class Bell:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None  # kept open for writing while someone listens
        self._pid = 0

    def ring(self) -> None:
        """Wake whoever listens (every listener waiting then). Never blocks and never raises.
        One write while a listener lives (under load, one a job); the pipe is opened again
        only once every listener has gone."""
        with self._lock:
            fd = self._writer()
            if fd is None:
                return
            try:
                os.write(fd, b"\0")
            except BlockingIOError:  # full: it has rung already and not been heard yet
                pass
            except OSError:  # every listener has gone (EPIPE): open it afresh next time
                os.close(fd)
                self._fd = None

    def close(self) -> None:
        """Close the pipe kept open for ringing (the next ring opens it again)."""
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None

    def _writer(self) -> int | None:
        if self._fd is not None and self._pid == os.getpid():
            return self._fd
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:  # not made yet, or nobody listens (ENXIO)
            return None
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):  # never write into a file put in its place
            os.close(fd)
            return None
        self._fd, self._pid = fd, os.getpid()
        return fd

    def listen(self) -> Listener | None:
        """A listener, or None where the bell cannot be made or opened (then poll only)."""
        try:
            with contextlib.suppress(FileExistsError):
                os.mkfifo(self.path, 0o600)
            fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return FifoListener(fd)


class Bells:
    """The database's two bells: chunks put in the queue, events put in the outbox."""

    def __init__(self, database: Path) -> None:
        self.chunk_bell = Bell(database.with_name(database.name + "-chunks.bell"))
        self.event_bell = Bell(database.with_name(database.name + "-events.bell"))

    def chunks(self) -> Listener | None:
        return self.chunk_bell.listen()

    def events(self) -> Listener | None:
        return self.event_bell.listen()

    def ring_chunks(self) -> None:
        self.chunk_bell.ring()

    def ring_events(self) -> None:
        self.event_bell.ring()

    def close(self) -> None:
        self.chunk_bell.close()
        self.event_bell.close()


class FifoListener:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._poll = select.poll()  # not select(): a process may hold descriptors past 1023
        self._poll.register(fd, select.POLLIN)

    def fileno(self) -> int:
        return self.fd

    def drain(self) -> bool:
        """Take every ring heard so far; whether there was any. Reads until the pipe gives
        less than a full read, so it ends even while rings keep coming."""
        rung = False
        while True:
            try:
                heard = os.read(self.fd, _DRAIN)
            except BlockingIOError:
                return rung
            except OSError as error:  # closed under us: nothing more to hear
                if error.errno == errno.EBADF:
                    return rung
                raise
            rung = rung or bool(heard)
            if len(heard) < _DRAIN:
                return rung

    def wait(self, timeout: float) -> bool:
        """Wait until rung or `timeout` seconds have passed; whether it was rung. Takes every
        ring heard so far: rings that piled up while its process was busy (under load, one a
        job) wake it once, not once each. Listeners waiting beside it all wake at a ring, and
        one of them takes it."""
        if self.drain():
            return True
        ready = self._poll.poll(max(0.0, timeout) * 1000)
        return bool(ready) and self.drain()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
