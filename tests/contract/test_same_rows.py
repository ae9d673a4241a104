"""Listed jobs kept by their rows on SQLite (`fanout.backends.sqlite.recent.SameRows`): a row
listed again unchanged gives the job decoded before, a changed one a new job; a single read
finds what a listing kept but keeps nothing; each thread keeps its own, bounded, oldest out.

Written to kill the mutants `python -m bench mutation` found surviving in
`fanout/backends/sqlite/recent.py` and `jobs.py` (stop 21).
"""

from __future__ import annotations

import threading

from fanout.backends.sqlite.recent import SameRows
from fanout.models import Job, JobStatus, TenantId
from fanout.service import Fanout, JobRequest

TENANT = TenantId("tenant-a")


def submitted(service: Fanout) -> Job:
    job, _ = service.submit(TENANT, JobRequest(task="echo", items=[1, 2, 3], params={}))
    return job


def test_a_listing_gives_the_unchanged_jobs_as_before_and_the_changed_ones_anew(
    service: Fanout,
) -> None:
    kept, changed = submitted(service), submitted(service)
    before = {job.id: job for job in service.list(TENANT, None, None, 20).items}

    service.cancel(TENANT, changed.id)
    after = {job.id: job for job in service.list(TENANT, None, None, 20).items}

    assert after[kept.id] is before[kept.id]
    assert after[changed.id] is not before[changed.id]
    assert after[changed.id].status is JobStatus.CANCELLED
    assert service.get(TENANT, kept.id) is before[kept.id]  # a get and a listing share them


def test_a_listed_job_with_large_params_is_decoded_afresh_each_time(service: Fanout) -> None:
    job, _ = service.submit(TENANT, JobRequest(task="echo", items=[1], params={"b": "x" * 20_000}))
    first = service.list(TENANT, None, None, 20).items[0]

    again = service.list(TENANT, None, None, 20).items[0]

    assert first.id == again.id == job.id and first is not again


def test_rows_listed_are_kept_only_when_small_and_at_most_the_limit_oldest_out() -> None:
    decoded: list[str] = []
    rows: SameRows[str] = SameRows(limit=2)

    def decode(row: tuple[str, int]) -> str:
        decoded.append(row[0])
        return f"{row[0]}{row[1]}"

    def listed(key: str, version: int = 1, keep: bool = True) -> str:
        return rows.keep((key, version), decode, keep)

    assert listed("a") == "a1" and listed("a") == "a1"
    assert rows.decode(("a", 1), decode) == "a1"  # a single read finds what a listing kept
    assert listed("a", version=2) == "a2"  # the row changed: decoded again, kept in its place
    listed("b")
    assert decoded == ["a", "a", "b"]
    listed("c")  # past the limit: a, the oldest, goes
    listed("b")
    listed("c")
    assert decoded == ["a", "a", "b", "c"]
    listed("a", version=2)  # gone: decoded again, and b, now the oldest, goes
    listed("c")
    listed("b")
    assert decoded == ["a", "a", "b", "c", "a", "b"]
    listed("d", keep=False)
    listed("d", keep=False)
    rows.decode(("e", 1), decode)
    rows.decode(("e", 1), decode)  # single reads keep nothing
    assert decoded == ["a", "a", "b", "c", "a", "b", "d", "d", "e", "e"]


def test_each_thread_keeps_its_own_rows() -> None:
    decoded: list[str] = []
    rows: SameRows[str] = SameRows(limit=4)

    def decode(row: tuple[str, int]) -> str:
        decoded.append(row[0])
        return row[0]

    rows.keep(("a", 1), decode, True)
    elsewhere = threading.Thread(target=rows.keep, args=(("a", 1), decode, True))
    elsewhere.start()
    elsewhere.join()
    rows.keep(("a", 1), decode, True)

    assert decoded == ["a", "a"]  # the other thread decoded it again; this one kept its own
