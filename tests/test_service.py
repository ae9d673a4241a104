"""The policy, through `fanout.service.Fanout` on every backend (SQLite, and AWS on the moto
server), with the queue driven by hand in this process: receive, then `process` or
`process_dead_letter`, in whatever order a test needs. Where results are counted by a stream
(AWS), `settle` runs the aggregator over everything recorded so far, as its poller would.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

import pytest
from pydantic_core import from_json

from fanout import reducer, task
from fanout.errors import InvalidJob, JobFinished, JobNotFound
from fanout.models import Delivery, Job, JobStatus, TenantId
from fanout.service import Fanout, JobRequest
from fanout.settings import Settings
from fanout.wiring import build
from tests.aws.moto import fresh_settings
from tests.contract.support import BackendUnavailable, echoed, record, unavailable
from tests.waiting import wait_until

TENANT = TenantId("tenant-a")
OTHER_TENANT = TenantId("tenant-b")
HOOK = "http://127.0.0.1:9/hook"
LONG = 300.0
SHORT = 0.05

CALLS: Counter[str] = Counter()


@task(name="test_service_double")
def double(item: int) -> int:
    if item < 0:
        raise ValueError(f"item {item} is negative")
    return 2 * item


@task(name="test_service_counted")
def counted(item: str) -> str:
    CALLS[item] += 1
    return item.upper()


@reducer(name="test_service_explode")
def explode(outputs: list[Any]) -> Any:
    raise ArithmeticError(f"cannot reduce {len(outputs)} outputs")


class MakeService(Protocol):
    def __call__(self, **overrides: Any) -> Fanout: ...


@pytest.fixture(params=["sqlite", "aws"])
def make_service(request: pytest.FixtureRequest, settings: Settings) -> MakeService:
    """Builds the service on the test's backend, with settings changed by `overrides`."""
    if request.param == "sqlite":
        return lambda **overrides: build(settings.model_copy(update=overrides))
    try:
        aws, clients = fresh_settings(settings.model_copy(update={"max_receive_count": 3}))
    except BackendUnavailable as error:
        unavailable("the aws backend", error)
    return lambda **overrides: build(aws.model_copy(update=overrides), clients)


@pytest.fixture
def service(make_service: MakeService) -> Fanout:
    return make_service()


def submit(service: Fanout, task_name: str, items: list[Any], **options: Any) -> Job:
    job, _ = service.submit(TENANT, JobRequest(task=task_name, items=items, params={}, **options))
    return job


def settle(service: Fanout) -> None:
    """Count whatever was recorded and send what that released (a stream's aggregator)."""
    while service.aggregate_changes():
        pass


def receive(service: Fanout, visibility: float = LONG) -> list[Delivery]:
    """Every chunk message now visible (a queue hands out at most 10 a call)."""
    settle(service)
    received: list[Delivery] = []
    while batch := service.backend.queue.receive(10, visibility):
        received += batch
    return received


def process(service: Fanout, *deliveries: Delivery) -> None:
    for delivery in deliveries:
        service.process(delivery)
    settle(service)


def drain(
    service: Fanout, order: Callable[[list[Delivery]], list[Delivery]] = lambda ds: ds
) -> int:
    """Process deliveries, each batch in `order`, until the queue is empty; how many there were."""
    processed = 0
    while deliveries := receive(service):
        for delivery in order(deliveries):
            service.process(delivery)
            processed += 1
    settle(service)
    return processed


def results(service: Fanout, job: Job) -> list[dict[str, Any]]:
    return [from_json(line) for line in service.result_lines(job, 0, None)]


def counts(job: Job) -> tuple[int, int, int, int, int, int]:
    return (job.total, job.succeeded, job.failed, job.pending, job.running, job.cancelled)


# -- running a job to completion --------------------------------------------------------------


def test_every_item_gets_exactly_one_outcome_and_the_counts_are_exact(service: Fanout) -> None:
    items = [-1 if i in (3, 100, 249) else i for i in range(250)]
    job = submit(
        service,
        "test_service_double",
        items,
        chunk_size=7,
        max_concurrency=4,
        tolerated_failure_count=3,
    )

    assert drain(service) == 36
    job = service.get(TENANT, job.id)
    assert job.status is JobStatus.SUCCEEDED
    assert counts(job) == (250, 247, 3, 0, 0, 0)
    outcomes = results(service, job)
    assert [o["index"] for o in outcomes] == list(range(250))
    for index, outcome in enumerate(outcomes):
        if items[index] < 0:
            assert outcome["status"] == "failed"
            assert outcome["error"] == {
                "type": "ValueError",
                "message": "item -1 is negative",
                "attempts": 1,
            }
        else:
            assert outcome == {"index": index, "status": "succeeded", "output": 2 * index}


@pytest.mark.parametrize("order", ["reverse", "random"])
def test_results_are_in_input_order_though_chunks_finish_in_another_order(
    service: Fanout, order: str
) -> None:
    job = submit(service, "test_service_double", list(range(90)), chunk_size=4, max_concurrency=5)
    shuffle = random.Random(11)

    def reorder(deliveries: list[Delivery]) -> list[Delivery]:
        if order == "reverse":
            return deliveries[::-1]
        return shuffle.sample(deliveries, len(deliveries))

    drain(service, reorder)

    job = service.get(TENANT, job.id)
    assert job.status is JobStatus.SUCCEEDED
    assert [o["output"] for o in results(service, job)] == [2 * i for i in range(90)]
    assert [o["output"] for o in results(service, job)[37:45]] == [2 * i for i in range(37, 45)]


def test_paging_results_returns_the_requested_slice_in_input_order(service: Fanout) -> None:
    job = submit(service, "test_service_double", list(range(30)), chunk_size=4)
    drain(service, lambda ds: ds[::-1])
    job = service.get(TENANT, job.id)

    page = [from_json(line) for line in service.result_lines(job, 9, 10)]

    assert [o["index"] for o in page] == list(range(9, 19))


def test_a_finished_job_emits_exactly_one_completion_event(service: Fanout) -> None:
    job = submit(service, "test_service_double", list(range(20)), chunk_size=3, webhook_url=HOOK)
    drain(service)

    job = service.get(TENANT, job.id)
    assert job.event is not None
    assert not service.finalize(job.id)
    due = service.backend.outbox.due_events(time.time() + 1, 100)
    assert [e.id for e in due] == [job.event.id]
    payload = from_json(due[0].payload)
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["counts"]["succeeded"] == 20
    assert payload["data"]["status"] == "succeeded"


# -- redelivery -------------------------------------------------------------------------------


def test_processing_the_same_delivery_twice_never_double_counts(service: Fanout) -> None:
    items = [f"{uuid.uuid4()}-{i}" for i in range(6)]
    job = submit(service, "test_service_counted", items, chunk_size=3, max_concurrency=2)
    deliveries = receive(service)

    process(service, *deliveries, *deliveries)

    job = service.get(TENANT, job.id)
    assert job.status is JobStatus.SUCCEEDED
    assert counts(job) == (6, 6, 0, 0, 0, 0)
    assert [CALLS[item] for item in items] == [1] * 6
    assert [o["output"] for o in results(service, job)] == [item.upper() for item in items]


@pytest.mark.parametrize("late_first", [False, True])
def test_a_chunk_redelivered_after_its_visibility_timeout_is_counted_once(
    service: Fanout, late_first: bool
) -> None:
    items = [f"{uuid.uuid4()}-{i}" for i in range(4)]
    job = submit(service, "test_service_counted", items, chunk_size=4)
    [first] = service.backend.queue.receive(10, SHORT)
    [second] = wait_until(lambda: receive(service), timeout=10)
    assert (second.chunk, second.receive_count) == (first.chunk, 2)

    process(service, *([first, second] if late_first else [second, first]))

    job = service.get(TENANT, job.id)
    assert job.status is JobStatus.SUCCEEDED
    assert counts(job) == (4, 4, 0, 0, 0, 0)
    assert [CALLS[item] for item in items] == [1] * 4
    assert receive(service) == []


# -- failure tolerance (Step Functions' Map semantics) ----------------------------------------


@pytest.mark.parametrize(
    ("failures", "count", "percentage", "status"),
    [
        (0, None, None, JobStatus.SUCCEEDED),
        (1, None, None, JobStatus.FAILED),
        (1, 0, None, JobStatus.FAILED),
        (1, 1, None, JobStatus.SUCCEEDED),
        (2, 1, None, JobStatus.FAILED),
        (2, None, 20.0, JobStatus.SUCCEEDED),
        (3, None, 20.0, JobStatus.FAILED),
        (3, 5, 20.0, JobStatus.FAILED),
        (3, 2, 50.0, JobStatus.FAILED),
        (2, 2, 50.0, JobStatus.SUCCEEDED),
        (10, None, 100.0, JobStatus.SUCCEEDED),
    ],
)
def test_a_job_fails_only_when_its_failures_exceed_the_tolerance(
    service: Fanout, failures: int, count: int | None, percentage: float | None, status: JobStatus
) -> None:
    items = [-1] * failures + list(range(10 - failures))
    job = submit(
        service,
        "test_service_double",
        items,
        chunk_size=3,
        tolerated_failure_count=count,
        tolerated_failure_percentage=percentage,
    )

    drain(service)

    job = service.get(TENANT, job.id)
    assert job.status is status
    assert (job.succeeded, job.failed) == (10 - failures, failures)
    if status is JobStatus.FAILED:
        assert job.error == f"{failures} of 10 items failed, more than tolerated"
    else:
        assert job.error is None


# -- reducers ---------------------------------------------------------------------------------


def test_a_reducer_runs_once_over_the_ordered_outputs(service: Fanout) -> None:
    job = submit(
        service,
        "test_service_double",
        list(range(1, 101)),
        chunk_size=9,
        reduce="sum",
    )
    drain(service, lambda ds: ds[::-1])

    job = service.get(TENANT, job.id)
    assert (job.status, job.reduce_value) == (JobStatus.SUCCEEDED, 10100)


def test_a_reducer_sees_only_the_succeeded_outputs(service: Fanout) -> None:
    job = submit(
        service,
        "test_service_double",
        [1, -1, 2, -2, 3],
        chunk_size=2,
        reduce="count",
        tolerated_failure_count=2,
    )
    drain(service)

    job = service.get(TENANT, job.id)
    assert (job.status, job.reduce_value) == (JobStatus.SUCCEEDED, 3)


def test_a_reducer_that_raises_fails_the_job_with_its_error(service: Fanout) -> None:
    job = submit(service, "test_service_double", [1, 2, 3], reduce="test_service_explode")
    drain(service)

    job = service.get(TENANT, job.id)
    assert job.status is JobStatus.FAILED
    assert job.error == (
        "reducer 'test_service_explode' raised ArithmeticError: cannot reduce 3 outputs"
    )
    assert (job.succeeded, job.failed) == (3, 0)


# -- cancel and window changes ----------------------------------------------------------------


def test_cancelling_leaves_the_remaining_items_cancelled_and_the_counts_adding_up(
    service: Fanout,
) -> None:
    job = submit(
        service,
        "test_service_double",
        list(range(10)),
        chunk_size=1,
        max_concurrency=2,
        webhook_url=HOOK,
    )
    first, second = receive(service)
    process(service, first)

    cancelled = service.cancel(TENANT, job.id)

    assert cancelled.status is JobStatus.CANCELLED
    assert counts(cancelled) == (10, 1, 0, 0, 0, 9)
    # The chunks already queued are acknowledged without running.
    process(service, second)
    drain(service)
    job = service.get(TENANT, job.id)
    assert counts(job) == (10, 1, 0, 0, 0, 9)
    assert [o["status"] for o in results(service, job)] == ["succeeded"] + ["cancelled"] * 9
    assert job.event is not None
    assert from_json(job.event.payload)["type"] == "job.cancelled"
    with pytest.raises(JobFinished):
        service.cancel(TENANT, job.id)


def test_a_tenant_cannot_see_or_cancel_another_tenants_job(service: Fanout) -> None:
    job = submit(service, "test_service_double", [1, 2])

    with pytest.raises(JobNotFound):
        service.get(OTHER_TENANT, job.id)
    with pytest.raises(JobNotFound):
        service.cancel(OTHER_TENANT, job.id)
    with pytest.raises(JobNotFound):
        service.set_max_concurrency(OTHER_TENANT, job.id, 5)
    assert service.list(OTHER_TENANT, None, None, 10).items == []
    assert service.get(TENANT, job.id).status is JobStatus.QUEUED


def test_widening_the_window_of_a_running_job_queues_more_chunks(service: Fanout) -> None:
    job = submit(service, "test_service_double", list(range(10)), chunk_size=2, max_concurrency=1)
    assert len(receive(service)) == 1

    job = service.set_max_concurrency(TENANT, job.id, 3)

    assert job.options.max_concurrency == 3
    assert [d.chunk.start for d in receive(service)] == [2, 4]


def test_the_window_of_a_finished_job_cannot_change(service: Fanout) -> None:
    job = submit(service, "test_service_double", [1])
    drain(service)

    with pytest.raises(JobFinished):
        service.set_max_concurrency(TENANT, job.id, 3)


# -- reconciling ------------------------------------------------------------------------------


def test_the_reconciler_fails_a_job_past_its_timeout(service: Fanout) -> None:
    job = submit(service, "test_service_double", list(range(6)), chunk_size=2, timeout_seconds=1.0)
    deadline = job.created_at + 1.0
    before = time.time()
    service.reconcile()
    if before < deadline:
        assert not service.get(TENANT, job.id).status.terminal

    def timed_out() -> bool:
        service.reconcile()
        return service.get(TENANT, job.id).status.terminal

    wait_until(timed_out, timeout=10)

    job = service.get(TENANT, job.id)
    assert job.status is JobStatus.FAILED
    assert job.error == "timed out after 1.0 s"
    assert job.finished_at is not None and job.finished_at >= deadline
    assert counts(job) == (6, 0, 0, 0, 0, 6)
    assert drain(service) == 3
    assert counts(service.get(TENANT, job.id)) == (6, 0, 0, 0, 0, 6)
    assert [o["status"] for o in results(service, job)] == ["cancelled"] * 6


def test_the_reconciler_finalizes_a_complete_job_that_a_crash_left_unfinalized(
    service: Fanout,
) -> None:
    job = submit(service, "echo", list(range(8)), chunk_size=2, max_concurrency=2, webhook_url=HOOK)
    backend = service.backend
    # A worker that records each chunk (and the fan-in that counts it) dies before finalizing:
    # the release goes on, the terminal transition never happens.
    while deliveries := backend.queue.receive(10, LONG):
        for delivery in deliveries:
            backend.chunks.start_chunk(delivery.chunk, time.time())
            released = record(backend, delivery.chunk, echoed(delivery.chunk)).released
            if not backend.store_enqueues:
                backend.queue.send(released)
            backend.queue.delete(delivery.receipt)
    assert service.get(TENANT, job.id).status is JobStatus.RUNNING

    service.reconcile()

    job = service.get(TENANT, job.id)
    assert job.status is JobStatus.SUCCEEDED
    assert counts(job) == (8, 8, 0, 0, 0, 0)
    assert [o["output"] for o in results(service, job)] == list(range(8))
    finished_at = job.finished_at
    service.reconcile()
    assert service.get(TENANT, job.id).finished_at == finished_at
    assert len(service.backend.outbox.due_events(time.time() + 1, 10)) == 1


def test_the_reconciler_sends_again_a_released_chunk_whose_message_was_lost(
    make_service: MakeService,
) -> None:
    service = make_service(stale_after=0.05)
    queue = service.backend.queue
    job = submit(service, "test_service_double", list(range(6)), chunk_size=1, max_concurrency=2)
    # One message is lost before any worker saw it (a crash between the release and the
    # send); the other is held by a worker.
    held, lost = receive(service)
    queue.delete(lost.receipt)
    assert drain(service) == 0

    def released_again() -> list[Delivery]:
        service.reconcile()
        return receive(service)

    again = wait_until(released_again)

    # The lost one is sent again; the held one may be too (harmless: it counts once).
    assert lost.chunk in [d.chunk for d in again]
    assert {d.chunk for d in again} <= {held.chunk, lost.chunk}
    process(service, held, *again)
    drain(service)
    job = service.get(TENANT, job.id)
    assert job.status is JobStatus.SUCCEEDED
    assert counts(job) == (6, 6, 0, 0, 0, 0)


# -- poison items -----------------------------------------------------------------------------


def test_dead_letter_bisection_fails_only_the_item_that_kills_its_worker(
    make_service: MakeService,
) -> None:
    service = make_service(max_receive_count=2)
    queue = service.backend.queue
    poison = 5
    items = [f"{uuid.uuid4()}-{i}" for i in range(8)]
    job = submit(service, "test_service_counted", items, chunk_size=8)

    def run_workers() -> bool:
        for delivery in queue.receive(10, SHORT):
            if delivery.chunk.start <= poison < delivery.chunk.end:
                # The worker starts the chunk, then dies: no record, no delete.
                service.backend.chunks.start_chunk(delivery.chunk, time.time())
            else:
                service.process(delivery)
        for delivery in queue.receive_dead(10, LONG):
            service.process_dead_letter(delivery)
        settle(service)
        return service.get(TENANT, job.id).status.terminal

    wait_until(run_workers, timeout=20)

    job = service.get(TENANT, job.id)
    assert job.status is JobStatus.FAILED
    assert counts(job) == (8, 7, 1, 0, 0, 0)
    outcomes = results(service, job)
    assert outcomes[poison]["error"] == {
        "type": "WorkerLost",
        "message": "the worker died or hung on each of 2 deliveries",
        "attempts": 2,
    }
    assert [o["output"] for i, o in enumerate(outcomes) if i != poison] == [
        item.upper() for i, item in enumerate(items) if i != poison
    ]
    assert [CALLS[item] for i, item in enumerate(items) if i != poison] == [1] * 7


def test_a_dead_lettered_item_within_tolerance_lets_the_job_succeed(service: Fanout) -> None:
    job = submit(service, "test_service_double", [1, 2, 3], chunk_size=1, tolerated_failure_count=1)
    first, *rest = receive(service)

    service.process_dead_letter(first)
    process(service, *rest)

    job = service.get(TENANT, job.id)
    assert job.status is JobStatus.SUCCEEDED
    assert counts(job) == (3, 2, 1, 0, 0, 0)
    assert results(service, job)[0]["error"]["type"] == "WorkerLost"


def test_a_dead_letter_of_a_chunk_already_recorded_changes_nothing(service: Fanout) -> None:
    job = submit(service, "test_service_double", [1, 2, 3, 4], chunk_size=2)
    deliveries = receive(service)
    process(service, *deliveries)

    for delivery in deliveries:
        service.process_dead_letter(delivery)
    settle(service)

    job = service.get(TENANT, job.id)
    assert job.status is JobStatus.SUCCEEDED
    assert counts(job) == (4, 4, 0, 0, 0, 0)
    assert drain(service) == 0


# -- submitting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "title", "errors"),
    [
        (
            JobRequest(task="test_service_double", items=[1, "x", 3, {"a": 1}, 5], params={}),
            "Items do not match the task's input type",
            [1, 3],
        ),
        (JobRequest(task="no_such_task", items=[1], params={}), "Unknown task", ["task"]),
        (
            JobRequest(task="echo", items=[1], params={}, reduce="no_such_reducer"),
            "Unknown reducer",
            ["reduce"],
        ),
        (
            JobRequest(task="echo", items=[1], params={}, webhook_url="http://10.1.2.3/hook"),
            "Webhook URL refused",
            ["webhook.url"],
        ),
        (
            JobRequest(task="echo", items=list(range(1001)), params={}),
            "Too many items",
            ["items"],
        ),
    ],
)
def test_an_invalid_submission_is_refused_naming_what_is_wrong_and_stores_nothing(
    make_service: MakeService, request_: JobRequest, title: str, errors: list[Any]
) -> None:
    service = make_service(max_items=1000)

    with pytest.raises(InvalidJob) as refused:
        service.submit(TENANT, request_)

    assert refused.value.title == title
    named = [e.get("index", e.get("field")) for e in refused.value.errors]
    assert named == errors
    assert service.list(TENANT, None, None, 10).items == []
    assert receive(service) == []


def test_a_job_without_items_finishes_at_once(service: Fanout) -> None:
    job, secret = service.submit(
        TENANT, JobRequest(task="echo", items=[], params={}, webhook_url=HOOK)
    )

    assert job.status is JobStatus.SUCCEEDED
    assert counts(job) == (0, 0, 0, 0, 0, 0)
    assert job.finished_at is not None
    assert results(service, job) == []
    assert receive(service) == []
    assert job.event is not None
    assert from_json(job.event.payload)["type"] == "job.succeeded"
    assert secret is not None and secret.startswith("whsec_")


def test_a_webhook_secret_is_generated_and_shown_once_unless_given(service: Fanout) -> None:
    _, generated = service.submit(
        TENANT, JobRequest(task="echo", items=[1], params={}, webhook_url=HOOK)
    )
    _, given = service.submit(
        TENANT,
        JobRequest(task="echo", items=[1], params={}, webhook_url=HOOK, webhook_secret="whsec_x"),
    )
    _, without = service.submit(TENANT, JobRequest(task="echo", items=[1], params={}))

    assert generated is not None and generated.startswith("whsec_")
    assert (given, without) == (None, None)


def test_items_are_chunked_by_count(service: Fanout) -> None:
    job = submit(service, "echo", list(range(50)), chunk_size=7, max_concurrency=100)

    bounds = sorted((d.chunk.start, d.chunk.end) for d in receive(service))

    assert bounds == [(s, min(s + 7, 50)) for s in range(0, 50, 7)]
    assert job.options.chunk_size == 7


def test_items_are_chunked_by_bytes_and_still_come_back_in_order(
    make_service: MakeService,
) -> None:
    service = make_service(max_chunk_bytes=40)
    items = [f"item-{i:04d}" for i in range(20)]
    items[7] = "x" * 100
    job = submit(service, "echo", items, chunk_size=100, max_concurrency=100)

    deliveries = receive(service)
    bounds = sorted((d.chunk.start, d.chunk.end) for d in deliveries)
    assert [start for start, _ in bounds] == [0] + [end for _, end in bounds[:-1]]
    assert bounds[-1][1] == 20
    assert (7, 8) in bounds
    for delivery in deliveries:
        chunk_items = service.backend.chunks.start_chunk(delivery.chunk, time.time())
        assert chunk_items is not None
        assert len(chunk_items) <= 40 or delivery.chunk.size == 1
    process(service, *reversed(deliveries))

    job = service.get(TENANT, job.id)
    assert job.status is JobStatus.SUCCEEDED
    assert [o["output"] for o in results(service, job)] == items
