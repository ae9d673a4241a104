"""Reading jobs back from a `JobStore`, written once for every backend: reads of different jobs
with nothing written between them each find their own job, a taken id is refused naming it,
an unknown job has no secret, and a store made just now has nothing to deliver. And SQLite's
readiness probe, on a disk with less room than a job needs, says how much is free and where.

Written to kill the mutants `python -m bench mutation` found surviving in
`fanout/backends/sqlite/jobs.py` (the per-thread cache of recent reads keyed by job id, the
refusal of a taken id, the secret of an unknown job, the probe's message).
"""

from __future__ import annotations

import pytest

from fanout import wiring
from fanout.backends.sqlite import jobs
from fanout.errors import JobExists, StoreUnavailable
from fanout.models import JobId
from fanout.service import Backend
from fanout.settings import Settings
from tests.contract.conftest import BACKENDS
from tests.contract.support import BackendUnavailable, new_job, unavailable


def test_reads_of_two_jobs_with_nothing_written_between_find_each_its_own(
    backend: Backend,
) -> None:
    first, first_chunks = new_job(total=2, chunk_size=2)
    second, second_chunks = new_job(total=4, chunk_size=2)
    backend.jobs.create_job(first, first_chunks)
    backend.jobs.create_job(second, second_chunks)

    reads = [backend.jobs.get_job(job.id) for job in (first, second, first, second)]

    assert [(r.id, r.total) if r else None for r in reads] == [
        (first.id, 2),
        (second.id, 4),
        (first.id, 2),
        (second.id, 4),
    ]
    assert backend.jobs.get_job(JobId("job_unknown")) is None


def test_a_second_job_with_a_taken_id_is_refused_naming_the_id(backend: Backend) -> None:
    job, chunks = new_job(total=2)
    backend.jobs.create_job(job, chunks)

    with pytest.raises(JobExists) as refused:
        backend.jobs.create_job(job, chunks)

    assert job.id in str(refused.value)


def test_an_unknown_job_has_no_webhook_secret_and_a_known_one_its_own(backend: Backend) -> None:
    job, chunks = new_job(total=2, webhook=True)
    backend.jobs.create_job(job, chunks)

    assert backend.jobs.webhook_secret(JobId("job_unknown")) is None
    assert job.webhook is not None
    assert backend.jobs.webhook_secret(job.id) == job.webhook.secret


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_a_store_made_just_now_has_nothing_to_deliver(name: str, settings: Settings) -> None:
    try:
        made = BACKENDS[name](settings)
    except BackendUnavailable as error:
        unavailable(f"the {name} backend", error)

    assert made.outbox.undelivered() == 0
    assert made.outbox.due_events(1e12, 10) == []


def test_a_store_with_less_room_than_a_job_needs_is_unavailable_saying_how_much_and_where(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator reads the message in the server's log (`/readyz` and writes answer 503)."""
    store = wiring.sqlite_backend(settings)
    store.jobs.probe(1.0)  # room enough on the test's disk
    monkeypatch.setattr(jobs, "MIN_FREE_BYTES", 1 << 62)  # more than any disk has

    with pytest.raises(StoreUnavailable) as unavailable_now:
        store.jobs.probe(2.0)

    free, _, where = str(unavailable_now.value).partition(" bytes free in ")
    assert int(free) > 0
    assert where == str(settings.data_dir)
