"""Many rows inserted by one statement, not by one statement run per row (`executemany`).

Python's sqlite3 gives up the interpreter lock around every step of a statement, and
`executemany` steps once per row. In the API's process the event loop and the submit threads
want that lock too, and under `python -m bench load` py-spy found the thread storing a group of
submits waiting, inside `execute`, to take it back. It holds the one write turn every fanout
process takes meanwhile (`group.GroupWriter`), and the workers wait for that. One
`INSERT ... VALUES (...), (...)` is one step. With the submits stored together
(`creation.Creation.together`), the API's process held the turn 6.1-7.4 ms a group of eight
submits, against 7.4-8.5 ms before, in the same minutes (bench/README.md, `load`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

# Rows per statement, the largest that fits first: a few shapes of statement, which each
# connection prepares once and keeps (Python's sqlite3 caches them by their text).
SHAPES = (64, 16, 4, 1)
# A statement keeps a copy of the values it was last given while it stays cached (bindings
# outlive its run), and a chunk's items are up to 256 KiB: several rows go in one statement only
# while their values come to at most this much.
MAX_BYTES = 1 << 20
# Parameters per statement: SQLite's bound before 3.32 (https://sqlite.org/limits.html, #9).
MAX_PARAMETERS = 999


def insert_rows(
    conn: sqlite3.Connection, into: str, row: str, rows: Sequence[Sequence[Any]]
) -> None:
    """`INSERT INTO {into} VALUES {row}, {row}...` for `rows`, in order, in statements of one
    of the SHAPES; `row` is one row's placeholders, `(?, ?, 'queued')`."""
    per_row = row.count("?")
    at = 0
    while at < len(rows):
        for shape in SHAPES:
            some = rows[at : at + shape]
            if shape == 1 or (
                len(some) == shape
                and shape * per_row <= MAX_PARAMETERS
                and _size(some) <= MAX_BYTES
            ):
                break
        values = ", ".join([row] * len(some))
        conn.execute(f"INSERT INTO {into} VALUES {values}", [v for r in some for v in r])
        at += len(some)


def _size(rows: Sequence[Sequence[Any]]) -> int:
    return sum(len(v) for r in rows for v in r if isinstance(v, bytes | str))
