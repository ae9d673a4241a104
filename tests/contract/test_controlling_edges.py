"""A client's changes to a running or ended job, and admission, on the SQLite service: what
each refusal names, that another tenant's job is never touched, and backpressure's bounds (at
the bound already refused, with what waits, how many, the bound and when to retry).

Written to kill mutants `python -m bench mutation` found surviving in
`fanout/service/controlling.py` (issue 13). In tests/contract/ because the mutation run selects
this folder already (changing its selection resets every mutmut verdict).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from fanout.errors import JobFinished, JobNotFound, Overloaded
from fanout.models import Job, JobStatus, TenantId
from fanout.service import Fanout, JobRequest
from fanout.settings import Settings
from fanout.wiring import build
from tests.contract.support import new_job
from tests.waiting import wait_until

TENANT = TenantId("tenant-a")
OTHER = TenantId("tenant-b")
HOOK = "http://127.0.0.1:9/hook"


def submit(service: Fanout, items: int = 3, **options: Any) -> Job:
    request = JobRequest(task="echo", items=list(range(items)), params={}, **options)
    job, _ = service.submit(TENANT, request)
    return job


def test_a_cancelled_job_says_so_and_refuses_a_second_cancel_and_a_new_window(
    service: Fanout,
) -> None:
    job = submit(service, chunk_size=1, max_concurrency=1)

    cancelled = service.cancel(TENANT, job.id)

    assert (cancelled.status, cancelled.error) == (JobStatus.CANCELLED, "cancelled by the client")
    with pytest.raises(JobFinished) as again:
        service.cancel(TENANT, job.id)
    with pytest.raises(JobFinished) as window:
        service.set_max_concurrency(TENANT, job.id, 5)
    assert str(again.value) == str(window.value) == job.id


def test_a_redrive_answers_with_the_job_running_again_and_logs_it(
    service: Fanout, caplog: pytest.LogCaptureFixture
) -> None:
    job = submit(service, chunk_size=1, max_concurrency=1)
    service.cancel(TENANT, job.id)

    with caplog.at_level(logging.INFO, logger="fanout"):
        again = service.redrive(TENANT, job.id)

    assert f"job {job.id} redriven (1)" in [r.getMessage() for r in caplog.records]

    assert (again.id, again.status, again.redrive_count) == (job.id, JobStatus.QUEUED, 1)
    assert again.pending == 3


def test_another_tenant_can_neither_redrive_nor_resize_nor_cancel_a_job(service: Fanout) -> None:
    job = submit(service, chunk_size=1, max_concurrency=1)

    with pytest.raises(JobNotFound):
        service.set_max_concurrency(OTHER, job.id, 5)
    with pytest.raises(JobNotFound):
        service.cancel(OTHER, job.id)
    service.cancel(TENANT, job.id)
    with pytest.raises(JobNotFound):
        service.redrive(OTHER, job.id)

    untouched = service.get(TENANT, job.id)
    assert (untouched.options.max_concurrency, untouched.redrive_count) == (1, 0)


def test_a_wider_window_answers_with_the_job_as_resized(service: Fanout) -> None:
    job = submit(service, chunk_size=1, max_concurrency=1)

    resized = service.set_max_concurrency(TENANT, job.id, 3)

    assert resized.options.max_concurrency == 3


def test_admission_refuses_at_the_bound_of_unstarted_chunks_naming_it(settings: Settings) -> None:
    service = build(settings.model_copy(update={"max_unstarted_chunks": 3}))
    submit(service, items=2, chunk_size=1)
    service.admit()
    submit(service, items=1, chunk_size=1)

    with pytest.raises(Overloaded) as refused:
        service.admit()

    overloaded = refused.value
    assert (overloaded.what, overloaded.count, overloaded.bound) == ("chunks", 3, 3)
    assert overloaded.retry_after == settings.backpressure_retry_after
    assert str(overloaded) == "3 chunks wait, at or over the bound of 3"


def test_admission_refuses_at_the_bound_of_undelivered_webhooks_naming_it(
    settings: Settings,
) -> None:
    service = build(settings.model_copy(update={"max_undelivered_webhooks": 1}))
    job = submit(service, items=1, webhook_url=HOOK)
    service.cancel(TENANT, job.id)

    with pytest.raises(Overloaded) as refused:
        service.admit()

    overloaded = refused.value
    assert (overloaded.what, overloaded.count, overloaded.bound) == ("webhooks", 1, 1)
    assert overloaded.retry_after == settings.backpressure_retry_after


def test_readiness_counts_the_backlog_afresh(service: Fanout) -> None:
    """/readyz: what another process stored since the last count shows at once."""
    assert service.backlog().unstarted_chunks == 0
    job, chunks = new_job(total=4, chunk_size=1, max_concurrency=1)
    service.backend.jobs.create_job(job, chunks)

    assert service.ready().unstarted_chunks == 4


def test_the_backlog_is_known_counted_for_a_second_after_a_count(
    service: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What lets `POST /jobs` ask admission on its event loop: no store read within the TTL."""
    from fanout.service import controlling

    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    assert not service.backlog_counted()
    service.admit()
    assert service.backlog_counted()
    now[0] += controlling.BACKLOG_TTL - 0.01
    assert service.backlog_counted()
    now[0] += 0.02
    assert not service.backlog_counted()


def test_one_caller_takes_on_the_recount_the_others_are_answered_from_the_last_count(
    service: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the count is older than the TTL, the first to ask is answered False (it admits
    through a thread, which counts) and the rest True at once, before that thread has started:
    one POST a second waits for a count, not all those an event loop takes meanwhile. A claim
    that never counts lapses after the TTL, and a count past the stale bound serves nobody."""
    from fanout.service import controlling

    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    service.admit()
    now[0] += controlling.BACKLOG_TTL + 0.5
    assert [service.backlog_counted() for _ in range(4)] == [False, True, True, True]
    now[0] += controlling.BACKLOG_TTL - 0.01
    assert service.backlog_counted()  # claimed less than the TTL ago
    now[0] += 0.02
    assert [service.backlog_counted() for _ in range(3)] == [False, True, True]

    service.admit()  # the claimer's count
    assert service.backlog_counted()
    now[0] += controlling.BACKLOG_TTL + 0.01
    assert [service.backlog_counted() for _ in range(2)] == [False, True]
    now[0] += controlling.BACKLOG_STALE
    assert [service.backlog_counted() for _ in range(2)] == [False, False]


def test_the_backlogs_ages_are_bounded_inclusively(
    service: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A count exactly BACKLOG_TTL old is still counted, a claim exactly BACKLOG_TTL old still
    holds, and a count exactly BACKLOG_STALE old still serves those who did not claim."""
    from fanout.service import controlling

    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    service.admit()
    now[0] += controlling.BACKLOG_TTL
    assert service.backlog_counted()
    now[0] = 1000.0 + controlling.BACKLOG_STALE - controlling.BACKLOG_TTL
    assert [service.backlog_counted() for _ in range(2)] == [False, True]  # claimed now
    now[0] += controlling.BACKLOG_TTL  # the claim and the count both at their bounds
    assert service.backlog_counted()


def count_under_way(
    service: Fanout, monkeypatch: pytest.MonkeyPatch
) -> tuple[threading.Event, list[int], threading.Thread]:
    """A thread counting the backlog, held in the count until `go` is set (it then counts 7
    more unstarted chunks than there are); `counts` counts the counts begun."""
    counting, go, counts = threading.Event(), threading.Event(), [0]
    unstarted = service.backend.jobs.unstarted_chunks

    def slow_count() -> int:
        counts[0] += 1
        counting.set()
        assert go.wait(10)
        return unstarted() + 7

    monkeypatch.setattr(service.backend.jobs, "unstarted_chunks", slow_count)
    counter = threading.Thread(target=service.backlog)
    counter.start()
    assert counting.wait(10)
    return go, counts, counter


def test_while_one_thread_counts_the_backlog_the_others_get_the_last_count(
    service: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a second the count goes stale: one caller counts afresh and the others are answered
    from the last count meanwhile, without a store read (so `POST /jobs` asks inline)."""
    from fanout.service import controlling

    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    service.admit()
    first = service.backlog()
    now[0] += controlling.BACKLOG_TTL + 0.5
    assert not service.backlog_counted()

    go, counts, counter = count_under_way(service, monkeypatch)

    assert service.backlog_counted()
    assert service.backlog() == first
    service.admit()
    assert counts == [1]
    go.set()
    counter.join(10)
    assert service.backlog().unstarted_chunks == first.unstarted_chunks + 7
    assert counts == [1]


def test_a_count_older_than_the_stale_bound_is_not_used_the_caller_waits_for_the_new_one(
    service: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fanout.service import controlling

    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    first = service.backlog()
    now[0] += controlling.BACKLOG_STALE + 0.5

    go, _, counter = count_under_way(service, monkeypatch)
    assert not service.backlog_counted()

    spy = Attempts(service._counting)
    monkeypatch.setattr(service, "_counting", spy)
    answers: list[int] = []
    waiter = threading.Thread(target=lambda: answers.append(service.backlog().unstarted_chunks))
    waiter.start()
    wait_until(lambda: spy.blocking, 10.0, "the caller to wait for the count under way")
    go.set()
    counter.join(10)
    waiter.join(10)
    assert answers == [first.unstarted_chunks + 7]


class Attempts:
    """A lock that notes each blocking acquire."""

    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock
        self.blocking = 0

    def acquire(self, blocking: bool = True) -> bool:
        self.blocking += blocking
        return self.lock.acquire(blocking)

    def release(self) -> None:
        self.lock.release()

    def locked(self) -> bool:
        return self.lock.locked()
