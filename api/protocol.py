"""Deadlines for partial requests, at the HTTP protocol: uvicorn has none for a request's head.

uvicorn's keep-alive timeout closes a connection idle between requests, but a client that sends
a request head a byte at a time (slowloris), or never sends one, or drips its body, holds the
connection for ever. This subclass of uvicorn's httptools protocol (passed as `http=`) adds, as
Kestrel does (RequestHeadersTimeout, MinRequestBodyDataRate):

- the whole head (request line and headers) must arrive within `header_timeout` seconds of the
  connection or of the request's first byte, and be at most 64 KiB (431 otherwise);
- after a grace of `header_timeout`, the body must keep arriving at `min_body_rate` bytes per
  second on average; time the server itself stopped reading (the app not reading) is not held
  against the client.

A client too slow gets `408 Request Timeout` (problem+json) and the connection is closed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic_core import to_json
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024
CHECK_EVERY = 1.0


def _problem(status: int, title: str, detail: str) -> bytes:
    body = to_json({"type": "about:blank", "title": title, "status": status, "detail": detail})
    head = (
        f"HTTP/1.1 {status} {title}\r\ncontent-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedHttpTools(HttpToolsProtocol):
    header_timeout = 10.0
    min_body_rate = 1024.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timer: asyncio.TimerHandle | None = None
        self.head_bytes = 0
        self.body_watch: asyncio.TimerHandle | None = None
        self.body_since = 0.0
        self.body_bytes = 0
        self.refused = False

    # -- the head -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn's own narrowing
        super().connection_made(transport)
        self._arm_head()

    def _arm_head(self) -> None:
        if self.head_timer is None:
            self.head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _head_too_slow(self) -> None:
        self.head_timer = None
        detail = f"The request head did not arrive within {self.header_timeout:g} s."
        self._refuse(_problem(408, "Request Timeout", detail))

    def data_received(self, data: bytes) -> None:
        if not self.refused:
            super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_bytes = 0
        self._arm_head()

    def on_url(self, url: bytes) -> None:
        if self._head_fits(len(url)):
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head_fits(len(name) + len(value) + 4):
            super().on_header(name, value)

    def _head_fits(self, size: int) -> bool:
        self.head_bytes += size
        if self.head_bytes > MAX_HEAD_BYTES and not self.refused:
            detail = f"The request line and headers are over {MAX_HEAD_BYTES} bytes."
            self._refuse(_problem(431, "Request Header Fields Too Large", detail))
        return not self.refused

    def on_headers_complete(self) -> None:
        if self.refused:
            return
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None
        super().on_headers_complete()
        if self.parser.get_method() not in (b"GET", b"HEAD") and not self.body_watch:
            self._reset_rate()
            self.body_watch = self.loop.call_later(CHECK_EVERY, self._check_rate)

    # -- the body -------------------------------------------------------------------------------

    def on_body(self, body: bytes) -> None:
        if not self.refused:
            self.body_bytes += len(body)
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self.refused:
            self._stop_watching()
            super().on_message_complete()

    def _reset_rate(self) -> None:
        self.body_since, self.body_bytes = time.monotonic(), 0

    def _check_rate(self) -> None:
        self.body_watch = None
        if self.flow.read_paused:  # the app is not reading: not the client's fault
            self._reset_rate()
        elapsed = time.monotonic() - self.body_since
        if elapsed > self.header_timeout and self.body_bytes < self.min_body_rate * elapsed:
            rate = self.body_bytes / elapsed
            detail = (
                f"The body arrived at {rate:.0f} bytes/s, under the minimum of"
                f" {self.min_body_rate:g} bytes/s."
            )
            self._refuse(_problem(408, "Request Timeout", detail))
            return
        self.body_watch = self.loop.call_later(CHECK_EVERY, self._check_rate)

    def _stop_watching(self) -> None:
        if self.body_watch is not None:
            self.body_watch.cancel()
            self.body_watch = None

    # -- both -----------------------------------------------------------------------------------

    def _refuse(self, response: bytes) -> None:
        """Answer (unless the app already is) and close; the app sees a disconnect."""
        self.refused = True
        self._stop_watching()
        cycle = self.cycle
        answered = cycle is not None and cycle.response_started and not cycle.response_complete
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        if not self.transport.is_closing():
            if not answered:
                self.transport.write(response)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_watching()
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None
        super().connection_lost(exc)


def guarded_protocol(header_timeout: float, min_body_rate: float) -> type[GuardedHttpTools]:
    """The protocol class to pass as uvicorn's `http=`, with these limits."""
    return type(
        "GuardedHttpTools",
        (GuardedHttpTools,),
        {"header_timeout": header_timeout, "min_body_rate": min_body_rate},
    )
