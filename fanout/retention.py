"""How ended jobs are removed where the store does not expire them (SQLite): by the service's
periodic `purge`, in short transactions that the workers' own writes interleave with.

A job ends; FANOUT_RETENTION_DAYS later it goes, with everything stored for it. Each call
purges until nothing is due or its time budget is spent (the next call goes on), then gives the
freed pages back to the file system, also a few at a time. A retention of 0 keeps every job.
"""

from __future__ import annotations

import time

from fanout.ports import Retention

JOBS_PER_TRANSACTION = 64
PAGES_PER_TRANSACTION = 256  # 1 MiB of 4 KiB pages
BUDGET_SECONDS = 1.0
# Between two transactions: room for a waiting writer (SQLite's busy handler sleeps and
# retries, so a writer that never pauses could keep the lock from it).
PAUSE_SECONDS = 0.002


def purge(store: Retention, retention_days: float, budget: float = BUDGET_SECONDS) -> int:
    """Purge what is due, then compact; returns how many jobs went."""
    if retention_days <= 0:
        return 0
    deadline = time.monotonic() + budget
    purged = 0
    while time.monotonic() < deadline:
        count = store.purge_expired(time.time(), retention_days * 86400, JOBS_PER_TRANSACTION)
        purged += count
        if count < JOBS_PER_TRANSACTION:
            break
        time.sleep(PAUSE_SECONDS)
    while time.monotonic() < deadline:
        if store.compact(PAGES_PER_TRANSACTION) <= PAGES_PER_TRANSACTION:
            break
        time.sleep(PAUSE_SECONDS)
    return purged
