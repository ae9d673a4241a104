"""The reconciler finalizes a job whose every item has an outcome but which no one finalized
(the process recording its last chunk died before finalizing): with failed items too, not only
when all succeeded.

Written to kill mutants `python -m bench mutation` found surviving in
`fanout/service/housekeeping.py` (issue 13). On the SQLite service; in tests/contract/ because
the mutation run selects this folder already (changing its selection resets every verdict).
"""

from __future__ import annotations

import pytest

from fanout.models import JobStatus
from fanout.service import Fanout
from tests.contract.support import new_job
from tests.contract.test_store_contract import run, stored


@pytest.mark.parametrize(
    ("failed", "status"),
    [(frozenset(), JobStatus.SUCCEEDED), (frozenset({1, 2}), JobStatus.FAILED)],
    ids=["all succeeded", "some failed"],
)
def test_a_job_whose_items_all_have_an_outcome_is_finalized_by_the_reconciler(
    service: Fanout, failed: frozenset[int], status: JobStatus
) -> None:
    backend = service.backend
    job, chunks = new_job(total=4, chunk_size=2, max_concurrency=2)
    for chunk in backend.jobs.create_job(job, chunks):
        run(backend, chunk, failed)
    assert stored(backend, job.id).status is JobStatus.RUNNING, "recorded, not finalized"

    service.reconcile()

    ended = stored(backend, job.id)
    assert (ended.status, ended.succeeded, ended.failed) == (status, 4 - len(failed), len(failed))
