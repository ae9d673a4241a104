"""Completion events announced by notices (AWS: the notify queue), written once for every
backend: where a backend announces events, a job's end sends one notice naming its event, the
notice claims the event once, an acknowledged notice leaves the queue, a failed attempt's retry
is announced again, and the sweep leaves a freshly announced event to its notice for a grace
period. A backend without notices (SQLite) announces nothing and its sweep finds the event at
once.

Written to kill the mutants `python -m bench mutation --aws` found surviving (or reached by no
in-process test) in `fanout/service/delivering.py` and `finishing.py`: the code only a backend
with notices runs.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from fanout import tasks
from fanout.models import EventId, Job, JobId, Notice, TenantId
from fanout.service import Backend, Fanout, JobRequest
from fanout.settings import Settings
from fanout.webhooks import Attempt
from fanout.workers import chunk_worker
from tests.waiting import wait_until

TENANT = TenantId("tenant-notices")


def ended(backend: Backend, settings: Settings) -> tuple[Fanout, Job]:
    tasks.load(settings.tasks, settings.app_dir)
    service = Fanout(backend, settings)
    request = JobRequest(task="echo", items=[1, 2], params={}, webhook_url="http://127.0.0.1:9/h")
    job, _ = service.submit(TENANT, request)
    for _ in range(50):
        chunk_worker.poll_once(service)
        service.aggregate_changes()
        job = service.get(TENANT, job.id)
        if job.status.terminal:
            return service, job
    raise AssertionError("the job did not end")


def announces(service: Fanout) -> bool:
    return service.backend.notifications is not None


def not_visible(service: Fanout) -> int:
    """Notices received and not yet acknowledged, as the queue counts them."""
    queue: Any = service.backend.notifications
    attributes = queue.client.get_queue_attributes(
        QueueUrl=queue.queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"])


def delayed(service: Fanout) -> int:
    """Notices sent with a delay that has not yet passed, as the queue counts them."""
    queue: Any = service.backend.notifications
    attributes = queue.client.get_queue_attributes(
        QueueUrl=queue.queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"])


def test_a_job_s_end_announces_its_event_once_and_the_notice_claims_it_once(
    backend: Backend, settings: Settings
) -> None:
    service, job = ended(backend, settings)
    assert job.event is not None
    if not announces(service):
        assert service.receive_notices() == []
        return

    [notice] = wait_until(service.receive_notices, 10, "the completion event's notice")

    assert (notice.event_id, notice.job_id) == (job.event.id, job.id)
    claimed = service.notice_event(notice)
    assert claimed is not None and claimed.id == job.event.id
    assert service.notice_event(notice) is None  # a duplicate notice: the attempt is claimed
    assert not_visible(service) == 1
    service.acknowledge(notice)
    assert not_visible(service) == 0


def test_a_notice_for_another_event_of_the_job_claims_nothing(
    backend: Backend, settings: Settings
) -> None:
    service, job = ended(backend, settings)
    assert job.event is not None

    stale = Notice(EventId(f"{job.event.id}_0"), job.id)
    unknown = Notice(job.event.id, JobId("job_unknown"))

    assert service.notice_event(stale) is None
    assert service.notice_event(unknown) is None
    assert service.notice_event(Notice(job.event.id, job.id)) is not None


class Rival:
    """The outbox, where another deliverer claims each batch just before this one does: the
    race between reading a pending, due event and claiming its attempt."""

    def __init__(self, outbox: Any) -> None:
        self.outbox = outbox

    def claim_attempts(self, events: Any, now: float, lease_until: float) -> list[bool]:
        self.outbox.claim_attempts(events, now, lease_until)
        taken: list[bool] = self.outbox.claim_attempts(events, now, lease_until)
        return taken

    def __getattr__(self, name: str) -> Any:
        return getattr(self.outbox, name)


def test_a_notice_whose_attempt_another_deliverer_claims_first_claims_nothing(
    backend: Backend, settings: Settings
) -> None:
    service, job = ended(backend, settings)
    assert job.event is not None
    racing = Fanout(dataclasses.replace(backend, outbox=Rival(backend.outbox)), settings)

    assert racing.notice_event(Notice(job.event.id, job.id)) is None
    assert service.due_events(10) == []  # the rival holds the attempt


def test_a_failed_attempt_s_retry_is_announced_and_a_delivered_one_is_not_retried(
    backend: Backend, settings: Settings
) -> None:
    service, job = ended(backend, settings)
    assert job.event is not None
    if announces(service):
        [first] = wait_until(service.receive_notices, 10, "the completion event's notice")
        service.acknowledge(first)

    service.record_attempt(job.event, Attempt(500, None, None))

    if not announces(service):
        return
    [retry] = wait_until(service.receive_notices, 10, "the retry's notice")
    assert (retry.event_id, retry.job_id) == (job.event.id, job.id)
    event = wait_until(lambda: service.notice_event(retry), 10, "the retry to be due")
    assert event.attempts == 1


def test_a_retry_is_announced_with_its_delay_so_its_notice_is_not_seen_before_it_is_due(
    backend: Backend, settings: Settings
) -> None:
    """A retry 30 s off (the receiver's Retry-After) is announced delayed: its notice waits in
    the queue, unseen, instead of arriving early and being refused as not yet due (which would
    leave the retry to the sweep's grace period)."""
    service, job = ended(backend, settings)
    assert job.event is not None
    if announces(service):
        [first] = wait_until(service.receive_notices, 10, "the completion event's notice")
        service.acknowledge(first)

    service.record_attempt(job.event, Attempt(503, None, 30.0))

    event = service.get(TENANT, job.id).event
    assert event is not None and event.attempts == 1
    assert event.next_attempt_at >= time.time() + 20
    assert service.receive_notices() == []
    if announces(service):
        assert delayed(service) == 1


def test_the_sweep_leaves_an_announced_event_to_its_notice_for_a_grace_period(
    backend: Backend, settings: Settings
) -> None:
    service, job = ended(backend, settings)

    due = [event.id for event in service.due_events()]

    # Announced events are the notices' for NOTICE_GRACE; unannounced ones are due at once.
    assert job.event is not None
    assert due == ([] if announces(service) else [job.event.id])
