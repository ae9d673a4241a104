"""The SQLite idempotency store at its exact boundaries, where `now` is the port's argument so
no test waits: a claim exactly `lease` seconds old is no longer "claimed less than lease seconds
ago" and is taken over; a key exactly a day old is not yet past its day and still replays. And
its refusals name the key (their text is the 409/422 problem's detail).

Written to kill mutants `python -m bench mutation` found surviving (issue 13). SQLite only; in
tests/contract/ because the mutation run selects this folder already (changing its selection
resets every mutmut verdict).
"""

from __future__ import annotations

import pytest

from fanout import wiring
from fanout.backends.sqlite.idempotency import IDEMPOTENCY_TTL
from fanout.errors import IdempotencyConflict, IdempotencyMismatch
from fanout.models import KeyClaim
from fanout.service import Backend, new_job_id
from fanout.settings import Settings
from tests.contract.support import TENANT

T0 = 1_000_000.0  # whole seconds: T0 + LEASE - LEASE is T0 exactly in binary floating point
LEASE = 10.0


@pytest.fixture
def backend(settings: Settings) -> Backend:
    return wiring.sqlite_backend(settings)


def test_a_claim_exactly_a_lease_old_is_taken_over_and_one_a_moment_younger_is_not(
    backend: Backend,
) -> None:
    keys, job_id = backend.idempotency, new_job_id()
    keys.claim(TENANT, "key-1", "body", job_id, T0, LEASE)

    with pytest.raises(IdempotencyConflict) as held:
        keys.claim(TENANT, "key-1", "body", new_job_id(), T0 + LEASE - 0.5, LEASE)

    assert keys.claim(TENANT, "key-1", "body", new_job_id(), T0 + LEASE, LEASE) == KeyClaim(job_id)
    assert str(held.value) == "key-1"


def test_a_key_exactly_a_day_old_still_replays_and_names_itself_on_another_body(
    backend: Backend,
) -> None:
    keys, job_id = backend.idempotency, new_job_id()
    keys.claim(TENANT, "key-1", "body", job_id, T0, LEASE)
    keys.finish(TENANT, "key-1", b"first")
    day_later = T0 + IDEMPOTENCY_TTL

    replay = keys.claim(TENANT, "key-1", "body", new_job_id(), day_later, LEASE)
    with pytest.raises(IdempotencyMismatch) as other:
        keys.claim(TENANT, "key-1", "another body", new_job_id(), day_later, LEASE)

    assert replay == KeyClaim(job_id, b"first")
    assert str(other.value) == "key-1"
