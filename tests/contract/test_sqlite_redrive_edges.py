"""A redrive on SQLite that cannot be made: a chunk with failed items whose input is gone (a file
written before failed chunks kept their input; on AWS, an item past its expiry). The refusal
names the items, and nothing of the redrive is left half-done.

Written to kill mutants `python -m bench mutation` found surviving (issue 13). SQLite only; in
tests/contract/ because the mutation run selects this folder already (changing its selection
resets every mutmut verdict).
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from fanout import wiring
from fanout.errors import NothingToRedrive
from fanout.models import JobStatus
from fanout.settings import Settings
from tests.contract.support import new_job
from tests.contract.test_store_contract import claim, lines_of, run, stored


def test_a_redrive_of_failed_items_whose_input_is_gone_is_refused_naming_them(
    settings: Settings,
) -> None:
    backend = wiring.sqlite_backend(settings)
    job, chunks = new_job(total=6, chunk_size=3, max_concurrency=2)
    first, second = backend.jobs.create_job(job, chunks)
    run(backend, first, frozenset({1}))
    run(backend, second, frozenset({4}))
    assert claim(backend, job, JobStatus.FAILED)
    with sqlite3.connect(settings.database) as conn:
        conn.execute("UPDATE chunks SET items = NULL WHERE job_id = ? AND start = 3", (job.id,))
    before = lines_of(backend, job.id)

    with pytest.raises(NothingToRedrive) as refused:
        backend.jobs.redrive(job.id, time.time())

    assert str(refused.value) == "the inputs of items 3-5 are gone (expired)"
    after = stored(backend, job.id)
    assert (after.status, after.failed, after.redrive_count) == (JobStatus.FAILED, 2, 0)
    assert lines_of(backend, job.id) == before, "chunk 0-3 was cut, then rolled back"
