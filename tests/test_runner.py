"""Running a chunk's items through a task: one outcome line per item, retries of `Retry` and
timeouts with backoff up to `max_attempts`, other errors failing the item at once, async items
running concurrently. Test tasks are registered under names starting with `test_`."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
import warnings
from collections import Counter
from typing import Any

import pytest
from pydantic_core import from_json, to_json

from fanout import Retry, task, tasks
from fanout.errors import TaskTimeout
from fanout.models import ChunkResult, TenantId
from fanout.runner import RunPolicy, failed_chunk, run_chunk
from fanout.service import Fanout, JobRequest

HANG = 30.0  # how long a hanging task would wait if its timeout did not interrupt it


def policy(max_attempts: int = 3, async_concurrency: int = 100) -> RunPolicy:
    return RunPolicy(
        max_attempts=max_attempts,
        async_concurrency=async_concurrency,
        backoff_base=0.001,
        backoff_max=0.01,
    )


def run(
    name: str,
    items: list[Any],
    params: dict[str, Any] | None = None,
    start: int = 0,
    run_policy: RunPolicy | None = None,
) -> tuple[ChunkResult, list[dict[str, Any]]]:
    definition = tasks.get_task(name)
    assert definition is not None
    result = run_chunk(definition, start, to_json(items), params or {}, run_policy or policy())
    return result, [from_json(line) for line in result.lines.split(b"\n")]


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


# -- outcomes ---------------------------------------------------------------------------------


def test_a_chunk_yields_one_outcome_per_item_in_order_with_its_tallies() -> None:
    @task(name="test_runner_square")
    def square(item: int) -> int:
        return item * item

    result, outcomes = run("test_runner_square", [3, 1, 2], start=40)

    assert (result.succeeded, result.failed) == (3, 0)
    assert outcomes == [
        {"index": 40, "status": "succeeded", "output": 9},
        {"index": 41, "status": "succeeded", "output": 1},
        {"index": 42, "status": "succeeded", "output": 4},
    ]


def test_a_task_receives_the_jobs_params_as_its_second_argument() -> None:
    @task(name="test_runner_scale")
    def scale(item: int, params: dict[str, Any]) -> int:
        return item * int(params["factor"])

    @task(name="test_runner_scale_async")
    async def scale_async(item: int, params: dict[str, Any]) -> int:
        return item * int(params["factor"])

    for name in ("test_runner_scale", "test_runner_scale_async"):
        _, outcomes = run(name, [1, 2], params={"factor": 10})
        assert [o["output"] for o in outcomes] == [10, 20]


def test_items_are_given_to_the_task_as_its_input_type() -> None:
    @task(name="test_runner_typed")
    def kind(item: tuple[int, str]) -> str:
        return f"{type(item).__name__}:{item[0] + 1}:{item[1]}"

    _, outcomes = run("test_runner_typed", [[1, "a"]])

    assert outcomes[0]["output"] == "tuple:2:a"


def test_an_exception_other_than_retry_fails_its_item_at_once_and_only_it() -> None:
    calls: Counter[int] = Counter()

    @task(name="test_runner_picky")
    def picky(item: int) -> int:
        calls[item] += 1
        if item == 2:
            raise KeyError("two")
        return item

    result, outcomes = run("test_runner_picky", [1, 2, 3], run_policy=policy(max_attempts=5))

    assert (result.succeeded, result.failed) == (2, 1)
    assert outcomes[1] == {
        "index": 1,
        "status": "failed",
        "error": {"type": "KeyError", "message": "'two'", "attempts": 1},
    }
    assert [o["output"] for o in (outcomes[0], outcomes[2])] == [1, 3]
    assert calls == Counter({1: 1, 2: 1, 3: 1})


def test_an_output_that_does_not_fit_the_output_type_fails_that_item_only() -> None:
    @task(name="test_runner_liar")
    def liar(item: int) -> int:
        return "not a number" if item == 2 else item  # type: ignore[return-value]  # on purpose

    # As in production, where no filter turns pydantic's serialization warning into an error.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result, outcomes = run("test_runner_liar", [1, 2, 3])

    assert (result.succeeded, result.failed) == (2, 1)
    assert outcomes[1]["status"] == "failed"
    assert outcomes[1]["error"]["attempts"] == 1
    assert "int" in outcomes[1]["error"]["message"]
    assert [o["output"] for o in (outcomes[0], outcomes[2])] == [1, 3]


def test_an_output_that_cannot_be_serialized_fails_that_item_only() -> None:
    @task(name="test_runner_opaque")
    def opaque(item: int) -> Any:
        return object() if item == 1 else item

    result, outcomes = run("test_runner_opaque", [0, 1])

    assert (result.succeeded, result.failed) == (1, 1)
    assert outcomes[1]["error"]["type"] == "PydanticSerializationError"


def test_an_item_that_no_longer_fits_the_input_type_fails_alone() -> None:
    @task(name="test_runner_ints")
    def ints(item: int) -> int:
        return item + 1

    result, outcomes = run("test_runner_ints", [1, "nope", 3])

    assert (result.succeeded, result.failed) == (2, 1)
    assert outcomes[1]["status"] == "failed"
    assert outcomes[1]["error"]["type"] == "ValidationError"
    assert outcomes[1]["error"]["attempts"] == 0
    assert [o["output"] for o in (outcomes[0], outcomes[2])] == [2, 4]


def test_a_failed_chunk_fails_every_item_with_the_same_error() -> None:
    result = failed_chunk(5, 8, RuntimeError("worker lost"), 3)

    outcomes = [from_json(line) for line in result.lines.split(b"\n")]
    assert (result.succeeded, result.failed) == (0, 3)
    assert [o["index"] for o in outcomes] == [5, 6, 7]
    assert {to_json(o["error"]) for o in outcomes} == {
        b'{"type":"RuntimeError","message":"worker lost","attempts":3}'
    }


# -- retries ----------------------------------------------------------------------------------


def test_retry_is_retried_until_the_task_succeeds() -> None:
    calls: Counter[int] = Counter()

    @task(name="test_runner_flaky")
    def flaky(item: int) -> int:
        calls[item] += 1
        if calls[item] < 3:
            raise Retry("not yet")
        return item

    result, outcomes = run("test_runner_flaky", [7, 8], run_policy=policy(max_attempts=3))

    assert (result.succeeded, result.failed) == (2, 0)
    assert [o["output"] for o in outcomes] == [7, 8]
    assert calls == Counter({7: 3, 8: 3})


@pytest.mark.parametrize("is_async", [False, True])
def test_retry_past_max_attempts_fails_the_item_with_type_message_and_attempts(
    is_async: bool,
) -> None:
    name = unique("test_runner_hopeless")
    calls: Counter[int] = Counter()

    def hopeless(item: int) -> int:
        calls[item] += 1
        raise Retry(f"still down for {item}")

    async def hopeless_async(item: int) -> int:
        return hopeless(item)

    task(name=name)(hopeless_async if is_async else hopeless)
    result, outcomes = run(name, [1, 2], run_policy=policy(max_attempts=4))

    assert (result.succeeded, result.failed) == (0, 2)
    assert outcomes[0]["error"] == {"type": "Retry", "message": "still down for 1", "attempts": 4}
    assert calls == Counter({1: 4, 2: 4})


def test_a_retry_waits_the_delay_the_task_asks_for() -> None:
    calls: list[float] = []

    @task(name="test_runner_patient")
    def patient(item: int) -> int:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise Retry("later", delay=0.05)
        return item

    run("test_runner_patient", [1], run_policy=policy(max_attempts=3))

    assert len(calls) == 3
    assert all(later - earlier >= 0.05 for earlier, later in itertools.pairwise(calls))


def test_backoff_is_exponential_with_full_jitter_up_to_the_maximum() -> None:
    backoff = RunPolicy(max_attempts=10, async_concurrency=1, backoff_base=0.1, backoff_max=1.0)

    for attempt, cap in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        delays = [backoff.delay(attempt, RuntimeError()) for _ in range(300)]
        assert all(0 <= d <= cap for d in delays)
        # Full jitter: spread over the whole range, not bunched at the cap or at zero.
        assert max(delays) > cap * 0.75 and min(delays) < cap * 0.25
    assert backoff.delay(1, Retry(delay=7.5)) == 7.5


def test_a_tasks_own_max_attempts_overrides_the_jobs(service: Fanout) -> None:
    calls: Counter[int] = Counter()

    @task(name="test_runner_twice", max_attempts=2)
    def twice(item: int) -> int:
        calls[item] += 1
        raise Retry("again")

    tenant = TenantId("tenant-a")
    job, _ = service.submit(
        tenant,
        JobRequest(task="test_runner_twice", items=[1], params={}, max_attempts=5),
    )
    for delivery in service.backend.queue.receive(10, 300):
        service.process(delivery)

    [line] = service.result_lines(service.get(tenant, job.id), 0, None)
    assert from_json(line)["error"]["attempts"] == 2
    assert calls[1] == 2


# -- timeouts ---------------------------------------------------------------------------------


def test_a_sync_task_past_its_timeout_is_retried_then_failed_as_task_timeout() -> None:
    calls: Counter[int] = Counter()

    @task(name="test_runner_hangs", timeout=0.05)
    def hangs(item: int) -> int:
        calls[item] += 1
        if item == 1:
            threading.Event().wait(HANG)
        return item

    started = time.monotonic()
    result, outcomes = run("test_runner_hangs", [0, 1, 2], run_policy=policy(max_attempts=2))

    assert time.monotonic() - started < HANG
    assert (result.succeeded, result.failed) == (2, 1)
    assert outcomes[1]["error"] == {
        "type": TaskTimeout.__name__,
        "message": "item ran past the task's timeout of 0.05 s",
        "attempts": 2,
    }
    assert calls == Counter({0: 1, 1: 2, 2: 1})


def test_an_async_task_past_its_timeout_is_retried_then_failed_as_task_timeout() -> None:
    calls: Counter[int] = Counter()

    @task(name="test_runner_hangs_async", timeout=0.05)
    async def hangs(item: int) -> int:
        calls[item] += 1
        if item == 1:
            await asyncio.Event().wait()
        return item

    result, outcomes = run("test_runner_hangs_async", [0, 1, 2], run_policy=policy(max_attempts=3))

    assert (result.succeeded, result.failed) == (2, 1)
    assert outcomes[1]["error"] == {
        "type": TaskTimeout.__name__,
        "message": "item ran past the task's timeout of 0.05 s",
        "attempts": 3,
    }
    assert calls == Counter({0: 1, 1: 3, 2: 1})


def test_a_timeout_error_the_task_raises_itself_is_retried_and_kept() -> None:
    calls: Counter[int] = Counter()

    @task(name="test_runner_upstream_timeout")
    async def upstream(item: int) -> int:
        calls[item] += 1
        raise TimeoutError("upstream took too long")

    _, outcomes = run("test_runner_upstream_timeout", [1], run_policy=policy(max_attempts=2))

    assert outcomes[0]["error"] == {
        "type": "TimeoutError",
        "message": "upstream took too long",
        "attempts": 2,
    }
    assert calls[1] == 2


# -- async concurrency ------------------------------------------------------------------------


def test_the_async_items_of_a_chunk_run_concurrently() -> None:
    items = 20
    running = 0
    most = 0
    holder: dict[str, asyncio.Event] = {}

    @task(name="test_runner_together")
    async def together(item: int) -> int:
        nonlocal running, most
        everyone = holder.setdefault("in", asyncio.Event())
        running += 1
        most = max(most, running)
        if running == items:
            everyone.set()
        # Only returns once every item is in at the same time: a sequential runner times out.
        await asyncio.wait_for(everyone.wait(), 10)
        running -= 1
        return item

    result, outcomes = run("test_runner_together", list(range(items)))

    assert (result.succeeded, result.failed) == (items, 0)
    assert most == items
    assert [o["output"] for o in outcomes] == list(range(items))


def test_async_concurrency_is_capped_by_the_policy() -> None:
    running = 0
    most = 0

    @task(name="test_runner_capped")
    async def capped(item: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        for _ in range(3):
            await asyncio.sleep(0)  # yield, so that every item that may start does start
        running -= 1
        return item

    result, _ = run("test_runner_capped", list(range(12)), run_policy=policy(async_concurrency=3))

    assert result.succeeded == 12
    assert most == 3
