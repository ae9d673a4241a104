"""A job's items sent straight from a file, read a block at a time as the request goes out, so
a file of any size costs the client one block of memory.

JSON Lines and CSV travel as the body itself (`application/x-ndjson`, `text/csv`), with the task
and options as query parameters: the server reads such a body as a stream too. A JSON array is
spliced, as it is, into a JSON job object. Standard input's format, when not given, is told by
its first character: `[` starts a JSON array, anything else is JSON Lines.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import anyio
from pydantic_core import to_json

from fanout.client.items import Format, ItemsFileError, file_format

BLOCK = 256 * 1024
MEDIA_TYPES: dict[Format, str] = {"jsonl": "application/x-ndjson", "csv": "text/csv"}
WHITESPACE = b" \t\r\n\xef\xbb\xbf"  # and a UTF-8 byte order mark


@dataclass
class Upload:
    """An open file of items, the format it is in, and what goes around it in the body."""

    file: IO[bytes]
    format: Format
    head: bytes  # what was read to tell the format, sent first
    prefix: bytes = b""
    suffix: bytes = b""

    def blocks(self) -> Iterator[bytes]:
        try:
            yield self.prefix + self.head
            while block := self.file.read(BLOCK):
                yield block
            yield self.suffix
        finally:
            self.close()

    async def ablocks(self) -> AsyncIterator[bytes]:
        try:
            yield self.prefix + self.head
            while block := await anyio.to_thread.run_sync(self.file.read, BLOCK):
                yield block
            yield self.suffix
        finally:
            self.close()

    def close(self) -> None:
        if self.file is not sys.stdin.buffer:
            self.file.close()


def open_upload(path: str | Path, given: Format | None) -> Upload:
    """Open the file (or stdin for `-`) and tell its format; raises ItemsFileError."""
    try:
        # Closed by Upload.blocks once sent (it outlives this function, so no `with`).
        file = sys.stdin.buffer if str(path) == "-" else Path(path).open("rb")  # noqa: SIM115
    except OSError as error:
        raise ItemsFileError(f"cannot read {path}: {error.strerror}") from error
    format, head = file_format(path, given), b""
    if format is None:
        head = _skip_space(file)
        format = "json" if head.startswith(b"[") else "jsonl"
    return Upload(file, format, head)


def _skip_space(file: IO[bytes]) -> bytes:
    head = file.read(BLOCK)
    while head and not head.lstrip(WHITESPACE):
        head = file.read(BLOCK)
    return head.lstrip(WHITESPACE)


def request_parts(upload: Upload, job: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The query parameters and headers that carry `job` (its fields but the items) beside the
    upload; for a JSON array, the job goes around the array in the body instead."""
    if upload.format == "json":
        upload.prefix = to_json(job)[:-1] + (b',"items":' if len(job) else b'"items":')
        upload.suffix = b"}"
        return {}, {"content-type": "application/json"}
    query: dict[str, Any] = {}
    for name, value in job.items():
        if name == "webhook":
            query |= {f"webhook_{k}": v for k, v in value.items() if v is not None}
        elif name == "params":
            query[name] = to_json(value).decode()
        else:
            query[name] = value
    return query, {"content-type": MEDIA_TYPES[upload.format]}
