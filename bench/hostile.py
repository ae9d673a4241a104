"""Hostile peers, on 127.0.0.1 only, each bounded in time and bytes: for `python -m bench abuse`
and the end-to-end tests (tests/e2e/test_hostile_receivers.py, test_slow_clients.py).

`HugeBody` answers 200 with a 1 GiB body; `Dripper` answers one byte of its status line at a
time. Both record what they saw, so a test can tell whether the server hung up on them. The
slow clients open raw sockets to a `fanout serve` and send a request a little at a time.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Self

GIB = 1024**3
CHUNK = 1024 * 1024


@dataclass
class Seen:
    """What one connection of a hostile receiver saw."""

    sent: int = 0
    hung_up: bool = False  # the server closed the connection before the receiver was done
    done: bool = False
    opened: float = field(default_factory=time.monotonic)


@dataclass
class Hostile:
    """A threaded TCP server on 127.0.0.1 whose `answer` misbehaves after reading a request."""

    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def answer(self, sock: socket.socket, seen: Seen) -> None:
        raise NotImplementedError

    def connections(self) -> list[Seen]:
        with self.lock:
            return list(self.seen)

    @contextlib.contextmanager
    def running(self) -> Iterator[Self]:
        hostile = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                seen = Seen()
                with hostile.lock:
                    hostile.seen.append(seen)
                read_request(self.request)
                try:
                    hostile.answer(self.request, seen)
                except OSError:
                    seen.hung_up = True
                seen.done = True

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.stopping.set()
            server.shutdown()
            server.server_close()
            thread.join()


def read_request(sock: socket.socket) -> None:
    """Read the request's head and its Content-Length body (webhooks are small), at most 1 MiB."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data and len(data) < CHUNK:
        part = sock.recv(65536)
        if not part:
            return
        data += part
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < min(length, CHUNK):
        part = sock.recv(65536)
        if not part:
            return
        body += part


class HugeBody(Hostile):
    """Answers 200 with a 1 GiB body of zeros, sent as fast as the server reads it."""

    def answer(self, sock: socket.socket, seen: Seen) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % GIB)
        zeros = bytes(CHUNK)
        while seen.sent < GIB and not self.stopping.is_set():
            sock.sendall(zeros)
            seen.sent += CHUNK


@dataclass
class Dripper(Hostile):
    """Answers one byte of a 200 status line every `every` seconds, for at most `lasting`."""

    every: float = 0.5
    lasting: float = 40.0

    def answer(self, sock: socket.socket, seen: Seen) -> None:
        line = b"HTTP/1.1 200 OK\r\n" + b"x-drip: " + b"." * 1000
        deadline = time.monotonic() + self.lasting
        for byte in line:
            if time.monotonic() > deadline or self.stopping.wait(self.every):
                return
            if closed_by_peer(sock):
                raise ConnectionResetError("the server hung up")
            sock.sendall(bytes([byte]))
            seen.sent += 1


def closed_by_peer(sock: socket.socket) -> bool:
    """The other side has closed: a read would return end of file (or the reset)."""
    return bool(_readable([sock], 0)) and sock.recv(1, socket.MSG_PEEK) == b""


def _readable(sockets: list[socket.socket], timeout: float) -> list[socket.socket]:
    """Those of `sockets` with something to read (or closed), waiting up to `timeout`; epoll,
    not select(), which fails on descriptors past 1024 in a long test session."""
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        ready = {key.fd for key, _ in selector.select(timeout)}
    return [sock for sock in sockets if sock.fileno() in ready]


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (VmHWM), in MB: a high-water mark, so no sampling
    can miss the peak."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM line in /proc/PID/status")


class SlowClients:
    """Raw connections to a server on 127.0.0.1 that send their requests a byte at a time;
    `drip` keeps them going until the server closes each one, or `lasting` seconds pass."""

    def __init__(self, port: int, count: int, first: bytes) -> None:
        self.sockets: list[socket.socket] = []
        self.answers: dict[int, bytes] = {}
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(first)
            self.sockets.append(sock)

    def open(self) -> list[socket.socket]:
        return [s for s in self.sockets if s.fileno() not in self.answers]

    def drip(self, byte: bytes, every: float, lasting: float) -> None:
        deadline = time.monotonic() + lasting
        while self.open() and time.monotonic() < deadline:
            for sock in _readable(self.open(), every):
                self.answers[sock.fileno()] = _read_to_end(sock)
            for sock in self.open():
                with contextlib.suppress(OSError):
                    sock.sendall(byte)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def _read_to_end(sock: socket.socket) -> bytes:
    """What the server sent before closing (bounded: 64 KiB, 5 s)."""
    data = b""
    try:
        while len(data) < 65536 and (part := sock.recv(65536)):
            data += part
    except OSError:
        pass
    return data or b"(closed)"


def answer_to(port: int, head: bytes, wait: float = 10.0) -> bytes:
    """Send only a request's head and return the status line the server answers with (the body
    announced in the head is never sent)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(head)
        try:
            return sock.recv(65536).split(b"\r\n", 1)[0]
        except TimeoutError:
            return b"(no answer within %d s)" % wait
