"""Each webhook attempt recorded through `fanout.service.Fanout`, written once for every backend:
its outcome counted once under the right label of `/metrics`' `fanout_webhook_attempts_total`
(delivered, retrying, failed for good) and the event left in the matching state, the last
attempt's failure included (no retry time to schedule or announce).

Written to kill the mutants `python -m bench mutation` found surviving in
`Delivering.record_attempt` (the metric's labels; a give-up that must not reach the retry's
arithmetic).
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fanout import metrics, tasks
from fanout.models import DeliveryStatus, Job, TenantId, WebhookEvent
from fanout.service import Backend, Fanout, JobRequest
from fanout.settings import Settings
from fanout.webhooks import Attempt
from fanout.workers import chunk_worker

TENANT = TenantId("tenant-attempts")
OUTCOMES = ("delivered", "retrying", "failed")


def attempts_counted(service: Fanout) -> dict[str, float]:
    """`fanout_webhook_attempts_total` by outcome, as `/metrics` serves it."""
    body, _ = metrics.exposition(service, None)
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "fanout_webhook_attempts_total":
                found[sample.labels["outcome"]] = sample.value
    return found


def ended_job(backend: Backend, settings: Settings) -> tuple[Fanout, Job]:
    tasks.load(settings.tasks, settings.app_dir)
    service = Fanout(backend, settings.model_copy(update={"webhook_max_attempts": 2}))
    request = JobRequest(task="echo", items=[1], params={}, webhook_url="http://127.0.0.1:9/h")
    job, _ = service.submit(TENANT, request)
    for _ in range(50):
        chunk_worker.poll_once(service)
        service.aggregate_changes()
        job = service.get(TENANT, job.id)
        if job.status.terminal:
            return service, job
    raise AssertionError("the job did not end")


def event_of(service: Fanout, job: Job) -> WebhookEvent:
    event = service.get(TENANT, job.id).event
    assert event is not None
    return event


@pytest.mark.parametrize(
    ("attempts", "made", "outcome", "status"),
    [
        ([], Attempt(200, None, None), "delivered", DeliveryStatus.DELIVERED),
        ([], Attempt(500, None, None), "retrying", DeliveryStatus.PENDING),
        ([], Attempt(None, "connection refused", None), "retrying", DeliveryStatus.PENDING),
        ([], Attempt(410, None, None), "failed", DeliveryStatus.FAILED),
        ([Attempt(500, None, None)], Attempt(500, None, None), "failed", DeliveryStatus.FAILED),
        (
            [Attempt(500, None, None)],
            Attempt(204, None, None),
            "delivered",
            DeliveryStatus.DELIVERED,
        ),
    ],
    ids=["2xx", "5xx", "unreachable", "410", "last-attempt-fails", "last-attempt-delivers"],
)
def test_each_attempt_is_counted_once_under_its_outcome_and_leaves_the_event_so(
    backend: Backend,
    settings: Settings,
    attempts: list[Attempt],
    made: Attempt,
    outcome: str,
    status: DeliveryStatus,
) -> None:
    service, job = ended_job(backend, settings)
    for earlier in attempts:  # of 2 allowed
        service.record_attempt(event_of(service, job), earlier)
    before = attempts_counted(service)

    service.record_attempt(event_of(service, job), made)

    after = attempts_counted(service)
    assert {o: after[o] - before[o] for o in OUTCOMES} == {
        o: 1.0 if o == outcome else 0.0 for o in OUTCOMES
    }
    event = event_of(service, job)
    assert event.status is status
    assert event.attempts == len(attempts) + 1
    assert [a.status_code for a in event.history][-1] == made.status_code
