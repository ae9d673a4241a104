"""When a failed attempt is tried again. An item: a task's `Retry` (its own delay honoured,
async tasks as sync ones), each retry counted in the chunk's attempts; a chunk lost with its
worker fails every item with the attempts made. A webhook: its backoff (exponential, full
jitter from half the base, capped), a receiver's `Retry-After` (seconds or an HTTP-date, in any
zone, capped at a day), and when to stop (a 2xx, a 410, the last attempt).

Written to kill the mutants `python -m bench mutation` found surviving in the retry paths.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from pydantic_core import from_json, to_json

from fanout import Retry, task, tasks, webhooks
from fanout.models import DeliveryStatus, EventId, JobId, WebhookEvent
from fanout.runner import RunPolicy, failed_chunk, run_chunk
from fanout.webhooks import Attempt, next_attempt_at
from fanout.workers.notifier import client as notifier_client
from tests.webhook_receiver import Answer, Receiver, receiving

ITEM_POLICY = RunPolicy(max_attempts=3, async_concurrency=10, backoff_base=0.001, backoff_max=0.01)
TRIES: dict[str, list[float]] = {}


def third_time_sync(item: str) -> str:
    TRIES.setdefault(item, []).append(time.monotonic())
    if len(TRIES[item]) < 3:
        raise Retry("not yet", delay=0.05)
    return item


async def third_time_async(item: str) -> str:
    return third_time_sync(item)


task(name="test_retry_policy_third_time_sync")(third_time_sync)
task(name="test_retry_policy_third_time_async")(third_time_async)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_task_s_retries_wait_its_delay_and_count_in_the_chunk_s_attempts(kind: str) -> None:
    items = [f"{kind}-{time.time_ns()}-{i}" for i in range(4)]
    definition = tasks.get_task(f"test_retry_policy_third_time_{kind}")
    assert definition is not None

    result = run_chunk(definition, 0, to_json(items), {}, ITEM_POLICY)

    assert (result.succeeded, result.failed) == (4, 0)
    assert result.attempts == 4 * 3  # each item run three times: usage counts every run
    for item in items:
        first, second, third = TRIES[item]
        # The task asked for 50 ms; the policy's own backoff would wait at most 10.
        assert second - first >= 0.05 and third - second >= 0.05


@task(name="test_retry_policy_async_ints")
async def async_ints(item: int) -> int:
    return item * 10


def test_an_item_that_no_longer_fits_fails_alone_among_an_async_task_s_outputs() -> None:
    """Items are checked at submit; a worker whose task changed since fails just the misfits,
    each other item keeping its own output, in its place."""
    definition = tasks.get_task("test_retry_policy_async_ints")
    assert definition is not None

    result = run_chunk(definition, 5, b'[1, "x", 3, {"a": 1}, 5]', {}, ITEM_POLICY)

    outcomes = [from_json(line) for line in result.lines.split(b"\n")]
    assert [(o["index"], o["status"], o.get("output")) for o in outcomes] == [
        (5, "succeeded", 10),
        (6, "failed", None),
        (7, "succeeded", 30),
        (8, "failed", None),
        (9, "succeeded", 50),
    ]
    assert outcomes[1]["error"]["attempts"] == 0 and (result.succeeded, result.failed) == (3, 2)


def test_a_chunk_lost_with_its_worker_fails_every_item_with_the_attempts_made() -> None:
    result = failed_chunk(10, 14, RuntimeError("the worker died"), 3)

    assert (result.succeeded, result.failed, result.attempts) == (0, 4, 12)
    outcomes = [from_json(line) for line in result.lines.split(b"\n")]
    assert outcomes == [
        {
            "index": i,
            "status": "failed",
            "error": {"type": "RuntimeError", "message": "the worker died", "attempts": 3},
        }
        for i in range(10, 14)
    ]


FAILED = Attempt(500, None, None)
BASE = 10.0
SAMPLES = 400


def delays(attempt: Attempt, so_far: int, cap: float = 1e6, most: int = 100) -> list[float]:
    """Seconds from now to each of SAMPLES draws of the next attempt's time."""
    found = []
    for _ in range(SAMPLES):
        before = time.time()
        at = next_attempt_at(attempt, so_far, most, BASE, cap)
        assert at is not None
        found.append(at - before)
    return found


@pytest.mark.parametrize("so_far", [1, 2, 3, 4])
def test_the_backoff_is_drawn_from_the_whole_range_from_half_the_base_to_its_doubling(
    so_far: int,
) -> None:
    """Full jitter between base/2 and base * 2^(n-1): never sooner, never later, and spread
    over the range rather than bunched (SAMPLES draws miss a tenth of it by chance ~1e-18)."""
    low, high = BASE / 2, BASE * 2 ** (so_far - 1)
    drawn = delays(FAILED, so_far)

    assert all(low - 0.01 <= d <= high + 0.01 for d in drawn)
    assert min(drawn) < low + (high - low) / 10 or high == low
    assert max(drawn) > high - (high - low) / 10 - 0.01


def test_the_backoff_never_passes_its_cap() -> None:
    drawn = delays(FAILED, 12, cap=3 * BASE)

    assert all(BASE / 2 - 0.01 <= d <= 3 * BASE + 0.01 for d in drawn)
    assert max(drawn) > 2.7 * BASE


def test_retry_after_is_honoured_past_the_cap_but_never_past_a_day() -> None:
    hour = delays(Attempt(503, None, 3600.0), 1, cap=BASE)
    week = delays(Attempt(503, None, 7 * 86400.0), 1, cap=BASE)

    assert all(3599.9 <= d <= 3600.1 for d in hour)
    assert all(86399.9 <= d <= 86400.1 for d in week)


def test_a_short_retry_after_does_not_shorten_the_backoff() -> None:
    drawn = delays(Attempt(429, None, 0.0), 3)

    assert min(drawn) >= BASE / 2 - 0.01 and max(drawn) > 3 * BASE


@pytest.mark.parametrize(
    ("attempt", "so_far", "most"),
    [
        (Attempt(200, None, None), 1, 5),
        (Attempt(204, None, 60.0), 1, 5),
        (Attempt(410, None, None), 1, 5),
        (Attempt(500, None, None), 5, 5),
        (Attempt(None, "TimeoutError: no complete answer within 1 s", None), 6, 5),
    ],
)
def test_no_further_attempt_after_a_delivery_a_410_or_the_last_attempt(
    attempt: Attempt, so_far: int, most: int
) -> None:
    assert next_attempt_at(attempt, so_far, most, BASE, 60.0) is None


@pytest.mark.parametrize("status", [199, 300, 301, 404, 429, 500])
def test_an_answer_outside_2xx_other_than_410_is_tried_again(status: int) -> None:
    attempt = Attempt(status, None, None)

    assert not attempt.delivered and not attempt.final
    assert next_attempt_at(attempt, 4, 5, BASE, 60.0) is not None


# -- `Retry-After` as a real receiver sends it ----------------------------------------------------

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as state:
        yield state


def retry_after_sent(receiver: Receiver, value: str) -> float | None:
    """The `retry_after` of an attempt answered 503 with `Retry-After: value`."""
    receiver.answer = Answer(503, {"Retry-After": value})
    event = WebhookEvent(
        id=EventId("evt_retry"),
        job_id=JobId("job_retry"),
        url=receiver.url,
        secret="whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0",
        payload=b"{}",
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=0.0,
    )

    async def attempt() -> Attempt:
        return await webhooks.send(event, notifier_client(), LOOPBACK, 5.0)

    made = asyncio.run(attempt())
    assert made.status_code == 503 and made.error is None
    return made.retry_after


def http_date(offset: float, zone: Callable[[datetime], str]) -> str:
    return zone(datetime.now(UTC) + timedelta(seconds=offset))


def gmt(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def minus_zero(moment: datetime) -> str:
    """RFC 5322's "-0000": a UTC time whose zone the sender does not vouch for."""
    return moment.strftime("%a, %d %b %Y %H:%M:%S -0000")


def plus_two(moment: datetime) -> str:
    return moment.astimezone(timezone(timedelta(hours=2))).strftime("%a, %d %b %Y %H:%M:%S %z")


def test_retry_after_in_delay_seconds_is_read_as_seconds(receiver: Receiver) -> None:
    assert retry_after_sent(receiver, "120") == 120.0


@pytest.mark.parametrize("zone", [gmt, minus_zero, plus_two])
def test_retry_after_as_an_http_date_is_read_as_the_seconds_until_then(
    receiver: Receiver, zone: Callable[[datetime], str]
) -> None:
    seconds = retry_after_sent(receiver, http_date(600, zone))

    assert seconds is not None and 590 <= seconds <= 600


def test_retry_after_as_a_date_already_past_means_no_extra_wait(receiver: Receiver) -> None:
    assert retry_after_sent(receiver, http_date(-600, minus_zero)) == 0.0


@pytest.mark.parametrize("value", ["soon", "-5", "1.5", ""])
def test_an_unreadable_retry_after_is_no_retry_after(receiver: Receiver, value: str) -> None:
    assert retry_after_sent(receiver, value) is None
