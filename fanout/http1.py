"""One HTTP/1.1 POST over a connection of its own: h11's state machine (the one httpx runs on)
driven by asyncio streams, for webhook attempts.

An attempt is one request to one checked address, with no redirects, pooling, cookies or
decompression, so a general client's machinery is all cost: httpx's async client took 1.1 ms of
CPU per attempt here, this 0.25 ms (`bench/README.md`, "The webhook's HTTP client"). The caller
bounds the whole exchange in time (`fanout.webhooks.send`); here the answer is bounded in bytes.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

import h11

ProtocolError = h11.ProtocolError
# A receiver's status line and headers may take this much; past it the attempt is an error.
MAX_HEAD_BYTES = 64 * 1024
READ_BYTES = 64 * 1024


@dataclass(frozen=True)
class Answer:
    status_code: int
    headers: list[tuple[bytes, bytes]]

    def header(self, name: bytes) -> str | None:
        """The first value of header `name` (lower case)."""
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None


async def post(
    address: str,
    port: int,
    tls: ssl.SSLContext | None,
    server_name: str,
    head: list[tuple[bytes, bytes]],
    target: bytes,
    body: bytes,
    limit: int,
) -> Answer:
    """POST `body` to `target` at `address`, TLS-checked against `server_name` when `tls` is
    given, and read at most `limit` bytes of the answer's body. The connection is dropped at the
    end, unread rest and all; also when the caller's deadline cancels the exchange, so a
    receiver that reads nothing holds no socket after the attempt."""
    reader, writer = await asyncio.open_connection(
        address, port, ssl=tls, server_hostname=server_name if tls is not None else None
    )
    try:
        http = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        request = http.send(h11.Request(method="POST", target=target, headers=head))
        writer.write(request + http.send(h11.Data(data=body)) + http.send(h11.EndOfMessage()))
        await writer.drain()
        answer = await _answer(http, reader)
        await _read_some(http, reader, limit)
        return answer
    finally:
        writer.transport.abort()


async def _answer(http: h11.Connection, reader: asyncio.StreamReader) -> Answer:
    """The final answer's status and headers (1xx answers skipped)."""
    while True:
        event = http.next_event()
        if event is h11.NEED_DATA:
            http.receive_data(await reader.read(READ_BYTES))
        elif isinstance(event, h11.Response):
            return Answer(event.status_code, list(event.headers))
        elif not isinstance(event, h11.InformationalResponse):
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} before the answer")


async def _read_some(http: h11.Connection, reader: asyncio.StreamReader, limit: int) -> None:
    """Up to `limit` bytes of the body, or to its end if that comes first. A connection closed
    before the announced length is a protocol error, as it was for httpx."""
    read = 0
    while read < limit:
        event = http.next_event()
        if event is h11.NEED_DATA:
            http.receive_data(await reader.read(READ_BYTES))
        elif isinstance(event, h11.Data):
            read += len(event.data)
        else:  # EndOfMessage
            return
