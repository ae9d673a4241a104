"""Handing back a webhook attempt's claim (a deliverer stopping mid-attempt, `fanout.workers.
notifier`): the attempt can be taken again at once, on every backend (from the outbox where
deliverers poll it; announced again where notices announce events), and only the deliverer
still holding the claim can hand it back."""

from __future__ import annotations

from msgspec import structs

from fanout.models import JobId, WebhookEvent
from fanout.service import Backend, Fanout
from fanout.settings import Settings
from tests.contract.test_store_contract import queued_event

LEASE = 600.0  # seconds: longer than the test, so only a hand-back makes the attempt due


def takeable(service: Fanout, job_id: JobId) -> list[WebhookEvent]:
    """What a deliverer can claim now for the job: due events, and events named by notices."""
    taken = list(service.due_events(100))
    for notice in service.receive_notices(10):
        service.acknowledge(notice)
        if (event := service.notice_event(notice)) is not None:
            taken.append(event)
    return [event for event in taken if event.job_id == job_id]


def claimed(backend: Backend) -> tuple[JobId, WebhookEvent]:
    job, event, at = queued_event(backend)
    assert backend.outbox.claim_attempts([event], at + 1, at + LEASE) == [True]
    return job.id, structs.replace(event, next_attempt_at=at + LEASE)


def test_a_claim_handed_back_makes_the_attempt_takeable_at_once(
    backend: Backend, settings: Settings
) -> None:
    service = Fanout(backend, settings)
    job_id, held = claimed(backend)
    assert takeable(service, job_id) == []

    service.release_claim(held)

    [again] = takeable(service, job_id)
    assert (again.id, again.attempts) == (held.id, 0)


def test_a_claim_lost_to_another_deliverer_is_not_handed_back(
    backend: Backend, settings: Settings
) -> None:
    service = Fanout(backend, settings)
    job_id, first = claimed(backend)
    service.release_claim(first)
    [second] = takeable(service, job_id)

    service.release_claim(first)  # a stale claim: the second deliverer holds the attempt

    assert takeable(service, job_id) == []
    service.release_claim(second)
    assert [event.id for event in takeable(service, job_id)] == [second.id]
