"""The README's promise on `Idempotency-Key`: keys are kept for 24 hours. Within the day a key
replays its job; past it, the same key (with the same body or another) makes a new job. On every
backend, through the IdempotencyStore port, whose `now` is the clock: no test waits a day."""

from __future__ import annotations

import time

import pytest

from fanout.errors import IdempotencyConflict, IdempotencyMismatch
from fanout.models import JobId, KeyClaim
from fanout.service import Backend, new_job_id
from tests.contract.support import TENANT

DAY = 24 * 3600.0  # the README's "kept for 24 hours", written out rather than imported
LEASE = 10.0
RESPONSE = b'{"id":"the-first-job"}'


def claim(backend: Backend, body: str, now: float, job_id: JobId | None = None) -> KeyClaim:
    return backend.idempotency.claim(TENANT, "key-1", body, job_id or new_job_id(), now, LEASE)


def finished_key(backend: Backend) -> tuple[float, JobId]:
    """A key claimed and finished a moment ago: when, and the job it is bound to."""
    created = time.time()
    first = claim(backend, "body-a", created)
    backend.idempotency.finish(TENANT, "key-1", RESPONSE)
    return created, first.job_id


@pytest.mark.parametrize("age", [LEASE + 1, DAY / 2, DAY - 60], ids=["seconds", "hours", "a-day"])
def test_a_key_younger_than_a_day_replays_its_first_job(backend: Backend, age: float) -> None:
    created, job_id = finished_key(backend)

    assert claim(backend, "body-a", created + age) == KeyClaim(job_id, RESPONSE)
    with pytest.raises(IdempotencyMismatch):
        claim(backend, "body-b", created + age)


def test_a_key_older_than_a_day_makes_a_new_job(backend: Backend) -> None:
    created, first_job = finished_key(backend)
    later = created + DAY + 60
    second_job = new_job_id()

    assert claim(backend, "body-a", later, second_job) == KeyClaim(second_job, None)
    # A claim of its own, as a new key's: in progress, then replaying the new job.
    with pytest.raises(IdempotencyConflict):
        claim(backend, "body-a", later + 1)
    backend.idempotency.finish(TENANT, "key-1", b'{"id":"the-second-job"}')
    assert claim(backend, "body-a", later + 2) == KeyClaim(second_job, b'{"id":"the-second-job"}')
    assert second_job != first_job


def test_a_key_older_than_a_day_may_come_with_another_body(backend: Backend) -> None:
    created, _ = finished_key(backend)
    second_job = new_job_id()

    assert claim(backend, "body-b", created + DAY + 60, second_job) == KeyClaim(second_job, None)


def test_a_key_whose_request_died_a_day_ago_makes_a_new_job(backend: Backend) -> None:
    """Its holder died before finishing; a day on, the key no longer stands for its job."""
    created = time.time()
    claim(backend, "body-a", created)
    second_job = new_job_id()

    assert claim(backend, "body-a", created + DAY + 60, second_job) == KeyClaim(second_job, None)
