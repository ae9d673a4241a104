"""Items from a file: a JSON array, JSON Lines, or CSV (a header row, then one object per row,
as Step Functions' ItemReader reads CSV). `-` reads standard input."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

Format = Literal["json", "jsonl", "csv"]
SUFFIXES: dict[str, Format] = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}


class ItemsFileError(ValueError):
    """The file cannot be read as items; the message names the file and the line."""


def file_format(path: str | Path, given: Format | None = None) -> Format | None:
    """The format named, else the one the suffix says; None for stdin or an unknown suffix,
    where the content decides (`[` starts a JSON array, anything else is JSON Lines)."""
    if given is not None:
        return given
    return SUFFIXES.get(Path(path).suffix.lower()) if str(path) != "-" else None


def read_items(path: str | Path, format: Format | None = None) -> list[Any]:
    """Every item of the file, in order."""
    name = "standard input" if str(path) == "-" else str(path)
    with _open(path) as text:
        return list(_parse(text, file_format(path, format), name))


def _open(path: str | Path) -> IO[str]:
    if str(path) == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
    try:
        return Path(path).open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise ItemsFileError(f"cannot read {path}: {error.strerror}") from error


def _parse(text: IO[str], format: Format | None, name: str) -> Iterator[Any]:
    if format is None:
        content = text.read()
        format = "json" if content.lstrip().startswith("[") else "jsonl"
        text = io.StringIO(content)
    if format == "csv":
        yield from csv.DictReader(text)
    elif format == "json":
        try:
            items = json.load(text)
        except json.JSONDecodeError as error:
            raise ItemsFileError(f"{name}: line {error.lineno}: {error.msg}") from error
        if not isinstance(items, list):
            raise ItemsFileError(f"{name}: a JSON file must hold an array of items")
        yield from items
    else:
        yield from _lines(text, name)


def _lines(text: IO[str], name: str) -> Iterator[Any]:
    for number, line in enumerate(text, 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                raise ItemsFileError(f"{name}: line {number}: {error.msg}") from error
