"""Fan-in at its edges, written once for every backend: a chunk split in two (a dead letter
bisected to its poison item) is counted through its halves only, before a redrive and after it.

Written to kill the mutants `python -m bench mutation` found surviving in the fan-in path.
"""

from __future__ import annotations

import time

from fanout.models import ChunkRef, JobStatus
from fanout.service import Backend
from tests.contract.support import chunk_refs, new_job
from tests.contract.test_store_contract import claim, lines_of, run, stored


def test_a_split_chunk_is_never_released_again_by_a_redrive(backend: Backend) -> None:
    job, chunks = new_job(total=4, chunk_size=4, max_concurrency=1)
    [whole] = chunk_refs(job, chunks)
    backend.jobs.create_job(job, chunks)
    backend.chunks.start_chunk(whole, time.time())
    first, second = backend.chunks.split_chunk(whole)
    run(backend, first)
    assert run(backend, second, failed=frozenset({3})).complete
    assert claim(backend, job, JobStatus.FAILED)

    released = backend.jobs.redrive(job.id, time.time())

    # Only the failed item runs again: not the chunk the halves replaced, nor its other items.
    assert released == [ChunkRef(job.id, 3, 4)]
    run(backend, released[0])
    again = stored(backend, job.id)
    assert (again.succeeded, again.failed, again.pending) == (4, 0, 0)
    assert [(o["index"], o["status"]) for o in lines_of(backend, job.id)] == [
        (i, "succeeded") for i in range(4)
    ]
