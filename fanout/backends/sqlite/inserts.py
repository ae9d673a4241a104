"""Many rows inserted by one statement, not by one statement run per row (`executemany`).

Python's sqlite3 gives up the interpreter lock around every step of a statement, and
`executemany` steps once per row. In the API's process the event loop and the submit threads
want that lock too, and under `python -m bench load` py-spy found the thread storing a group of
submits waiting, inside `execute`, to take it back: while it waits it holds the one write turn
every fanout process takes (`group.GroupWriter`), and the workers wait for that. One
`INSERT ... VALUES (...), (...)` is one step. With this and the submits stored together
(`creation.Creation.together`), in ten alternating rounds against the code before: the p99 from
POST to webhook under 1 s in 9 rounds (5 before), POST p99 311 ms (350) at the median round,
7 % more jobs a second (bench/README.md, `load`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

# Parameters per statement: SQLite's bound before 3.32 (https://sqlite.org/limits.html, #9).
MAX_PARAMETERS = 999


def insert_rows(
    conn: sqlite3.Connection, into: str, row: str, rows: Sequence[Sequence[Any]]
) -> None:
    """`INSERT INTO {into} VALUES {row}, {row}...` for `rows`, as few statements as the bound
    on parameters allows; `row` is the placeholder of one row, `(?, ?, 'queued')`."""
    if not rows:
        return
    per_statement = max(1, MAX_PARAMETERS // row.count("?"))
    for at in range(0, len(rows), per_statement):
        some = rows[at : at + per_statement]
        values = ", ".join([row] * len(some))
        conn.execute(f"INSERT INTO {into} VALUES {values}", [v for r in some for v in r])
