"""Items read one at a time from a byte stream: a JSON array, JSON Lines, or CSV.

Whatever the source (an NDJSON request body, a file under the input directory, an S3 object),
items come out as they are parsed, so a million-item input is never held whole. A stream that
can't be read raises `Unreadable`, naming the line (or byte offset) at fault.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import IO, Any, Literal

import ijson
from pydantic_core import from_json

from fanout import jsonvalues

Format = Literal["json", "jsonl", "csv"]
FORMATS: dict[str, Format] = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
MEDIA_TYPES: dict[str, Format] = {
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/json-lines": "jsonl",
    "text/csv": "csv",
}
WHITESPACE = b" \t\r\n"
READ_BYTES = 1 << 20


class Unreadable(ValueError):
    """The input is not valid JSON, JSON Lines or CSV; `line` is the line at fault (1 is the
    first), where one is known."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message if line is None else f"line {line}: {message}")
        self.line = line
        self.message = message


def format_of(name: str) -> Format | None:
    """The format a file name's extension says (`.json`, `.jsonl`/`.ndjson`, `.csv`)."""
    lowered = name.lower()
    return next((f for ext, f in FORMATS.items() if lowered.endswith(ext)), None)


def read_items(stream: IO[bytes], format: Format, max_line_bytes: int) -> Iterator[Any]:
    """The items of `stream`, one at a time. A JSON Lines or CSV line longer than
    `max_line_bytes` is refused rather than read into memory."""
    if format == "jsonl":
        return _json_lines(stream, max_line_bytes)
    if format == "csv":
        return _csv_rows(stream, max_line_bytes)
    return _json_array(stream)


def _json_lines(stream: IO[bytes], max_line_bytes: int) -> Iterator[Any]:
    """One JSON value a line (RFC 7464's JSON text sequences without the RS; jsonlines.org);
    blank lines are skipped."""
    for number, line in enumerate(iter(lambda: stream.readline(max_line_bytes + 1), b""), 1):
        if len(line) > max_line_bytes:
            raise Unreadable(number, f"longer than {max_line_bytes} bytes")
        if line.isspace():
            continue
        try:
            value = from_json(line)
        except ValueError as error:
            raise Unreadable(number, f"not JSON: {error}") from None
        if jsonvalues.suspicious(line) and (found := jsonvalues.non_finite(value, "item", 1)):
            raise Unreadable(number, f"{jsonvalues.MESSAGE} (at {found[0]})")
        yield value


def _csv_rows(stream: IO[bytes], max_line_bytes: int) -> Iterator[dict[str, str]]:
    """A header row, then one item per row: an object of the header's names to the row's
    strings (the task's input type converts them). A BOM is dropped."""
    raw = io.BufferedReader(_Readable(stream))
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    rows = csv.reader(text, strict=True)
    try:
        header = next(rows, None)
        if header is None:
            return
        for row in rows:
            if len(row) != len(header):
                raise Unreadable(rows.line_num, f"{len(row)} fields, the header has {len(header)}")
            if sum(map(len, row)) > max_line_bytes:
                raise Unreadable(rows.line_num, f"longer than {max_line_bytes} bytes")
            yield dict(zip(header, row, strict=True))
    except (csv.Error, UnicodeDecodeError) as error:
        raise Unreadable(rows.line_num, str(error)) from None


def _json_array(stream: IO[bytes] | _Buffer) -> Iterator[Any]:
    """The elements of one top-level JSON array, parsed one at a time (ijson's C backend)."""
    first = stream.read(1)
    while first and first in WHITESPACE:
        first = stream.read(1)
    if first != b"[":
        raise Unreadable(None, "a .json input must hold one JSON array")
    try:
        yield from ijson.items(_Prepended(b"[", stream), "item", use_float=True)
    except ijson.JSONError as error:
        raise Unreadable(None, f"not a JSON array: {error}") from None


def array_items(data: bytes | memoryview) -> Iterator[Any]:
    """The elements of the JSON array `data` holds (already known to be valid JSON), one at
    a time."""
    return _json_array(_Buffer(memoryview(data)))


class _Buffer:
    """A buffer read from its start without copying it whole."""

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.at = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.at + size
        piece = bytes(self.data[self.at : end])
        self.at += len(piece)
        return piece


class _Prepended:
    """`stream` with `head` put back in front of it (what a peek took off)."""

    def __init__(self, head: bytes, stream: IO[bytes] | _Buffer) -> None:
        self.head = head
        self.stream = stream

    def read(self, size: int = -1) -> bytes:
        if not self.head or size == 0:  # ijson reads 0 bytes first, to see bytes from text
            return self.stream.read(size)
        head, self.head = self.head, b""
        return head + self.stream.read(max(0, size - len(head)) if size >= 0 else -1)


class _Readable(io.RawIOBase):
    """Any object with `read(n)` as the raw stream `io.TextIOWrapper` wants."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class PartsStream(io.RawIOBase):
    """An iterable of byte strings (a request body as it arrives) as a readable stream, at
    most `limit` bytes of it: past that, reading raises `TooLarge`."""

    def __init__(self, parts: Iterable[bytes], limit: int) -> None:
        self.parts = iter(parts)
        self.limit = limit
        self.read_bytes = 0
        self._part = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._part:
            part = next(self.parts, None)
            if part is None:
                return 0
            self.read_bytes += len(part)
            if self.read_bytes > self.limit:
                raise TooLarge(self.limit)
            self._part = part
        size = min(len(buffer), len(self._part))
        buffer[:size] = self._part[:size]
        self._part = self._part[size:]
        return size


class TooLarge(ValueError):
    """An input over its byte limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"over the limit of {limit} bytes")
        self.limit = limit


def buffered(parts: Iterable[bytes], limit: int) -> IO[bytes]:
    """A request body's parts as a buffered stream (fast `readline`), at most `limit` bytes."""
    return io.BufferedReader(PartsStream(parts, limit), buffer_size=READ_BYTES)


def limited(stream: IO[bytes], limit: int) -> IO[bytes]:
    """`stream` (a file, an S3 object's body) buffered, at most `limit` bytes of it."""
    return buffered(iter(lambda: stream.read(READ_BYTES), b""), limit)
