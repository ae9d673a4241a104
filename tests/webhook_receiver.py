"""A real webhook receiver on loopback for tests of single attempts (`fanout.webhooks.send`): it
records each request and answers as its `answer` says, including answers a hostile receiver
gives (a body that never ends, one that drips), over plain HTTP or TLS."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Answer:
    """A status and headers, then `body`; then, if `stall`, the connection is held open without
    another byte until the receiver stops; `drip` seconds between the body's bytes."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    length: int | None = None  # the announced Content-Length (default: len(body))
    stall: bool = False
    drip: float = 0.0


@dataclass
class Receiver:
    url: str = ""
    answer: Answer = field(default_factory=Answer)
    requests: list[Request] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)


def _handler(state: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {key.lower(): value for key, value in self.headers.items()}
            state.requests.append(Request(self.command, self.path, headers, body))
            self._answer(state.answer)

        def _answer(self, answer: Answer) -> None:
            self.send_response(answer.status)
            for key, value in answer.headers.items():
                self.send_header(key, value)
            length = len(answer.body) if answer.length is None else answer.length
            self.send_header("content-length", str(length))
            self.end_headers()
            self._write(answer)
            if answer.stall:
                state.stopping.wait(30.0)

        def _write(self, answer: Answer) -> None:
            if not answer.drip:
                self.wfile.write(answer.body)
                self.wfile.flush()
                return
            for byte in answer.body:
                if state.stopping.wait(answer.drip):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def listening(
    host: str, handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None
) -> Iterator[ThreadingHTTPServer]:
    """`handler` serving on the address `host`, a port the system picks, on a thread of its own
    until the block ends; over TLS with `tls`."""

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    server = Server((host, 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def receiving(
    host: str = "127.0.0.1",
    url_host: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> Iterator[Receiver]:
    """A receiver listening on the address `host`, its URL naming `url_host` (default `host`)."""
    state = Receiver()
    with listening(host, _handler(state), tls) as server:
        name = url_host or (f"[{host}]" if ":" in host else host)
        scheme = "https" if tls is not None else "http"
        state.url = f"{scheme}://{name}:{server.server_address[1]}/hook"
        try:
            yield state
        finally:
            state.stopping.set()
