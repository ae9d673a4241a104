"""Completion webhooks delivered to a real HTTP server on 127.0.0.1: Standard Webhooks
signatures, retries from the outbox, `Retry-After`, 410, giving up, exactly one event per job,
and the address check repeated at connect time."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import anyio
import httpx
import pytest
from standardwebhooks import Webhook

from fanout import task, webhooks
from fanout.api.app import create_app
from fanout.errors import InvalidJob, JobFinished
from fanout.models import DeliveryStatus, EventId, Job, JobId, TenantId, WebhookEvent
from fanout.service import Fanout, JobRequest
from fanout.settings import Settings
from fanout.wiring import build
from fanout.workers import chunk_worker
from fanout.workers.notifier import Notifier, deliver_now
from fanout.workers.notifier import client as notifier_client
from tests.waiting import wait_until
from tests.webhook_receiver import listening

TENANT = TenantId("default")
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


@task(name="tests_webhooks_fail_all", max_attempts=1)
def fail_all(item: int) -> int:
    raise ValueError(f"item {item} fails")


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every POST; answers with the scripted responses in turn, then `default`."""

    url: str = ""
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    default: tuple[int, dict[str, str]] = (200, {})
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Seconds each answer waits after the request is read: a slow receiver. The wait ends
    # early when the receiver stops, so no handler outlives its test.
    delay: float = 0.0
    stopping: threading.Event = field(default_factory=threading.Event)

    def respond(self, request: Received) -> tuple[int, dict[str, str]]:
        with self.lock:
            self.received.append(request)
            answer = self.script.pop(0) if self.script else self.default
        self.stopping.wait(self.delay)
        return answer

    def count(self) -> int:
        with self.lock:
            return len(self.received)


@contextmanager
def serving(host: str, url_host: str) -> Iterator[Receiver]:
    """A receiver listening on `host` (an address), reached as `url_host`."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, extra = state.respond(Received(self.path, headers, body))
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with listening(host, Handler) as server:
        state.url = f"http://{url_host}:{server.server_address[1]}/hook"
        try:
            yield state
        finally:
            state.stopping.set()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving("127.0.0.1", "127.0.0.1") as state:
        yield state


@pytest.fixture
def localhost_receiver() -> Iterator[Receiver]:
    """Reached as `localhost`, listening on the address a connection to that name is made to
    (127.0.0.1 or ::1, whichever the machine resolves first)."""
    first = socket.getaddrinfo("localhost", 0, type=socket.SOCK_STREAM)[0][4][0]
    with serving(str(first), "localhost") as state:
        yield state


@pytest.fixture
def loopback_service(settings: Settings) -> Fanout:
    """A service allowing both loopback networks, so `localhost` passes on any machine."""
    return build(settings.model_copy(update={"webhook_allow_networks": LOOPBACK}))


@pytest.fixture
def notifier(service: Fanout) -> Iterator[Notifier]:
    running = Notifier(service)
    running.start()
    yield running
    running.stop()


def deliver(service: Fanout, event: WebhookEvent) -> webhooks.Attempt:
    """One attempt, made and recorded as the notifier makes it."""
    [attempt] = deliver_now(service, [event])
    assert isinstance(attempt, webhooks.Attempt), attempt
    return attempt


def more_reads(notifier: Notifier, count: int) -> None:
    """Let the notifier read the outbox `count` more times (to show it sends nothing more)."""
    target = notifier.reads + count
    wait_until(lambda: notifier.reads >= target, 10.0, f"{count} more outbox reads")


def job_of(service: Fanout, job_id: JobId) -> Job:
    job = service.backend.jobs.get_job(job_id)
    assert job is not None
    return job


def finished_job(
    service: Fanout,
    url: str,
    secret: str | None = None,
    task: str = "echo",
    **options: Any,
) -> tuple[Job, str]:
    """A job with a webhook, run to its end; returns it and its webhook secret."""
    job, generated = service.submit(
        TENANT,
        JobRequest(
            task=task,
            items=[1, 2, 3],
            params={},
            webhook_url=url,
            webhook_secret=secret,
            **options,
        ),
    )
    while chunk_worker.poll_once(service):
        pass
    done = job_of(service, job.id)
    assert done.status.terminal
    used = secret or generated
    assert used is not None
    return done, used


def event_status(service: Fanout, job_id: JobId) -> Callable[[], DeliveryStatus | None]:
    def status() -> DeliveryStatus | None:
        event = job_of(service, job_id).event
        return None if event is None else event.status

    return status


def settled(service: Fanout, job_id: JobId) -> Callable[[], bool]:
    """The event was delivered or given up on."""
    status = event_status(service, job_id)
    return lambda: status() in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)


def the_event(service: Fanout, job_id: JobId) -> WebhookEvent:
    event = job_of(service, job_id).event
    assert event is not None
    return event


def get_over_http(settings: Settings, service: Fanout, path: str) -> dict[str, Any]:
    async def get() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=create_app(settings, service))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as api:
            response = await api.get(path)
            assert response.status_code == 200
            body: dict[str, Any] = response.json()
            return body

    return anyio.run(get)


# -- signing --------------------------------------------------------------------------------------


def test_the_completion_webhook_is_signed_with_the_generated_secret(
    service: Fanout, receiver: Receiver, notifier: Notifier
) -> None:
    job, secret = finished_job(service, receiver.url)

    wait_until(settled(service, job.id), 10.0)

    assert receiver.count() == 1
    request = receiver.received[0]
    payload = Webhook(secret).verify(request.body, request.headers)
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == the_event(service, job.id).id
    timestamp = int(request.headers["webhook-timestamp"])
    assert abs(timestamp - time.time()) < 60
    assert payload["type"] == "job.succeeded"
    assert datetime.fromisoformat(payload["timestamp"]).tzinfo is not None
    assert payload["data"]["id"] == job.id
    assert payload["data"]["status"] == "succeeded"
    assert payload["data"]["counts"]["succeeded"] == 3
    assert payload["data"]["finished_at"] is not None
    assert "secret" not in json.dumps(payload)


def test_the_webhook_is_signed_with_a_given_secret_and_fails_with_another(
    service: Fanout, receiver: Receiver, notifier: Notifier
) -> None:
    job, _ = finished_job(service, receiver.url, secret=SECRET)

    wait_until(settled(service, job.id), 10.0)

    request = receiver.received[0]
    assert Webhook(SECRET).verify(request.body, request.headers)["data"]["id"] == job.id
    with pytest.raises(Exception, match="signature"):
        Webhook(webhooks.new_secret()).verify(request.body, request.headers)


def test_the_host_header_names_the_url_host_though_the_checked_address_is_dialled(
    loopback_service: Fanout, localhost_receiver: Receiver
) -> None:
    service, receiver = loopback_service, localhost_receiver
    job, _ = finished_job(service, receiver.url)

    attempt = deliver(service, the_event(service, job.id))

    assert attempt.delivered
    assert the_event(service, job.id).status is DeliveryStatus.DELIVERED
    assert receiver.received[0].headers["host"] == receiver.url.split("/")[2]


@pytest.mark.parametrize(
    ("options", "event_type"),
    [({}, "job.failed"), ({"tolerated_failure_percentage": 100}, "job.succeeded")],
    ids=["over-tolerance", "within-tolerance"],
)
def test_the_event_type_follows_the_job_status(
    service: Fanout,
    receiver: Receiver,
    notifier: Notifier,
    options: dict[str, Any],
    event_type: str,
) -> None:
    job, secret = finished_job(service, receiver.url, task="tests_webhooks_fail_all", **options)

    wait_until(settled(service, job.id), 10.0)

    request = receiver.received[0]
    assert Webhook(secret).verify(request.body, request.headers)["type"] == event_type


def test_a_cancelled_job_sends_one_job_cancelled_event(
    service: Fanout, receiver: Receiver, notifier: Notifier
) -> None:
    job, secret = service.submit(
        TENANT, JobRequest(task="echo", items=[1, 2], params={}, webhook_url=receiver.url)
    )
    assert secret is not None
    service.cancel(TENANT, job.id)

    wait_until(settled(service, job.id), 10.0)

    assert receiver.count() == 1
    payload = Webhook(secret).verify(receiver.received[0].body, receiver.received[0].headers)
    assert payload["type"] == "job.cancelled"
    assert payload["data"]["counts"]["cancelled"] == 2


# -- retries --------------------------------------------------------------------------------------


def test_a_500_then_a_200_is_retried_with_the_same_webhook_id_and_both_attempts_shown(
    settings: Settings, service: Fanout, receiver: Receiver, notifier: Notifier
) -> None:
    receiver.script = [(500, {})]
    job, secret = finished_job(service, receiver.url)

    wait_until(settled(service, job.id), 10.0)

    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == f"evt_{job.id}"
    assert first.body == second.body
    Webhook(secret).verify(first.body, first.headers)
    Webhook(secret).verify(second.body, second.headers)
    shown = get_over_http(settings, service, f"/jobs/{job.id}")["webhook"]
    assert shown["event_id"] == first.headers["webhook-id"]
    assert shown["status"] == "delivered"
    assert [a["status_code"] for a in shown["attempts"]] == [500, 200]
    assert all(a["at"] is not None and a["error"] is None for a in shown["attempts"])


def test_a_webhook_given_up_on_leaves_the_job_its_status_and_results(
    settings: Settings, receiver: Receiver
) -> None:
    """A failing webhook never fails the job: every attempt fails and delivery is given up,
    and the job still reads as it ended, counts, results and all, with the failed delivery
    shown beside it."""
    service = build(settings.model_copy(update={"webhook_max_attempts": 2}))
    receiver.default = (500, {})
    job, _ = finished_job(service, receiver.url)
    notifier = Notifier(service)
    notifier.start()
    try:
        wait_until(settled(service, job.id), 10.0, "delivery to be given up")
    finally:
        notifier.stop()

    assert the_event(service, job.id).status is DeliveryStatus.FAILED
    assert receiver.count() == 2
    shown = get_over_http(settings, service, f"/jobs/{job.id}")
    assert (shown["status"], shown["counts"]["succeeded"], shown["counts"]["failed"]) == (
        "succeeded",
        3,
        0,
    )
    assert shown["finished_at"] is not None and shown["error"] is None
    assert shown["webhook"]["status"] == "failed"
    assert [a["status_code"] for a in shown["webhook"]["attempts"]] == [500, 500]
    results = get_over_http(settings, service, f"/jobs/{job.id}/results")
    assert [r["output"] for r in results["items"]] == [1, 2, 3]


def test_retry_after_in_seconds_is_honoured_beyond_the_backoff_cap(
    service: Fanout, receiver: Receiver
) -> None:
    receiver.script = [(503, {"Retry-After": "30"})]
    job, _ = finished_job(service, receiver.url)
    before = time.time()

    attempt = deliver(service, the_event(service, job.id))

    assert attempt.status_code == 503
    event = the_event(service, job.id)
    assert event.status is DeliveryStatus.PENDING
    assert event.next_attempt_at >= before + 30
    assert job.id not in [e.job_id for e in service.backend.outbox.due_events(before + 29, 10)]


def test_retry_after_as_an_http_date_is_honoured(service: Fanout, receiver: Receiver) -> None:
    later = datetime.now(UTC) + timedelta(seconds=120)
    receiver.script = [(429, {"Retry-After": format_datetime(later, usegmt=True)})]
    job, _ = finished_job(service, receiver.url)

    deliver(service, the_event(service, job.id))

    assert the_event(service, job.id).next_attempt_at >= later.timestamp() - 1


@pytest.mark.parametrize("unit", ["seconds", "http-date"])
def test_a_receiver_s_retry_after_is_honoured_up_to_a_day_and_no_further(
    service: Fanout, receiver: Receiver, unit: str
) -> None:
    """A receiver may push the next attempt back, but not out of the job's retention: a
    `Retry-After` of ten years waits a day (`webhooks.MAX_RETRY_AFTER`)."""
    ten_years = 10 * 365 * 24 * 3600
    later = datetime.now(UTC) + timedelta(seconds=ten_years)
    value = str(ten_years) if unit == "seconds" else format_datetime(later, usegmt=True)
    receiver.script = [(503, {"Retry-After": value})]
    job, _ = finished_job(service, receiver.url)
    before = time.time()

    deliver(service, the_event(service, job.id))
    after = time.time()

    event = the_event(service, job.id)
    assert event.status is DeliveryStatus.PENDING
    day = 24 * 3600
    assert before + day <= event.next_attempt_at <= after + day


@pytest.mark.parametrize("value", ["soon", "Mon, 99 Foo 2020 00:00:00 GMT", "-5", "1.5"])
def test_an_unreadable_retry_after_is_recorded_and_retried_with_backoff(
    settings: Settings, service: Fanout, receiver: Receiver, value: str
) -> None:
    receiver.script = [(503, {"Retry-After": value})]
    job, _ = finished_job(service, receiver.url)

    deliver(service, the_event(service, job.id))

    event = the_event(service, job.id)
    assert [a.status_code for a in event.history] == [503]
    assert event.status is DeliveryStatus.PENDING
    assert event.next_attempt_at <= time.time() + settings.webhook_backoff_max


def test_a_410_stops_retrying(service: Fanout, receiver: Receiver, notifier: Notifier) -> None:
    receiver.default = (410, {})
    job, _ = finished_job(service, receiver.url)

    wait_until(settled(service, job.id), 10.0)

    event = the_event(service, job.id)
    assert event.status is DeliveryStatus.FAILED
    assert [a.status_code for a in event.history] == [410]
    assert service.backend.outbox.due_events(time.time() + 1e6, 10) == []
    assert receiver.count() == 1


def test_delivery_gives_up_after_the_configured_attempts(
    settings: Settings, receiver: Receiver
) -> None:
    service = build(settings.model_copy(update={"webhook_max_attempts": 3}))
    receiver.default = (500, {})
    job, _ = finished_job(service, receiver.url)
    notifier = Notifier(service)
    notifier.start()
    try:
        wait_until(settled(service, job.id), 10.0)
    finally:
        notifier.stop()

    event = the_event(service, job.id)
    assert event.status is DeliveryStatus.FAILED
    assert [a.status_code for a in event.history] == [500, 500, 500]
    assert receiver.count() == 3
    assert service.backend.outbox.due_events(time.time() + 1e6, 10) == []


def test_a_receiver_slower_than_the_webhook_timeout_is_cut_off_and_retried(
    settings: Settings, receiver: Receiver
) -> None:
    """FANOUT_WEBHOOK_TIMEOUT, well under the default 10 s: a receiver that takes 30 s to
    answer gets its request, and the attempt ends at the configured deadline, is recorded as
    a timeout naming it, and is tried again later."""
    service = build(settings.model_copy(update={"webhook_timeout": 0.5}))
    receiver.delay = 30.0
    job, _ = finished_job(service, receiver.url)

    attempt = deliver(service, the_event(service, job.id))

    assert receiver.count() == 1  # the request went out; the answer never came in time
    assert attempt.status_code is None
    assert attempt.error == "TimeoutError: no complete answer within 0.5 s"
    event = the_event(service, job.id)
    assert event.status is DeliveryStatus.PENDING
    assert [a.error for a in event.history] == [attempt.error]


def test_a_receiver_faster_than_the_webhook_timeout_is_a_delivery(
    settings: Settings, receiver: Receiver
) -> None:
    service = build(settings.model_copy(update={"webhook_timeout": 30.0}))
    receiver.delay = 0.5
    job, _ = finished_job(service, receiver.url)

    attempt = deliver(service, the_event(service, job.id))

    assert (attempt.status_code, attempt.error) == (200, None)
    assert the_event(service, job.id).status is DeliveryStatus.DELIVERED


def test_a_receiver_that_cannot_be_reached_is_an_attempt_with_an_error(service: Fanout) -> None:
    job, _ = finished_job(service, "http://127.0.0.1:9/hook")

    attempt = deliver(service, the_event(service, job.id))

    assert attempt.status_code is None
    assert attempt.error is not None
    event = the_event(service, job.id)
    assert event.status is DeliveryStatus.PENDING
    assert event.history[0].error == attempt.error


# -- exactly once ---------------------------------------------------------------------------------


def test_a_job_emits_exactly_one_completion_event(
    service: Fanout, receiver: Receiver, notifier: Notifier
) -> None:
    job, _ = finished_job(service, receiver.url)

    assert service.finalize(job.id) is False
    service.reconcile()
    with pytest.raises(JobFinished):
        service.cancel(TENANT, job.id)
    wait_until(settled(service, job.id), 10.0)
    more_reads(notifier, 20)

    assert [r.headers["webhook-id"] for r in receiver.received] == [f"evt_{job.id}"]


def test_many_jobs_each_deliver_their_one_event_once(
    service: Fanout, receiver: Receiver, notifier: Notifier
) -> None:
    jobs = [finished_job(service, receiver.url)[0] for _ in range(30)]

    def all_settled() -> bool:
        return all(settled(service, job.id)() for job in jobs)

    wait_until(all_settled, 10.0)
    more_reads(notifier, 5)

    ids = sorted(r.headers["webhook-id"] for r in receiver.received)
    assert ids == sorted(f"evt_{job.id}" for job in jobs)


def test_an_attempt_whose_claim_ran_out_while_it_waited_is_not_sent(
    settings: Settings, receiver: Receiver
) -> None:
    """Two deliverers (two processes on one data dir): the first claims the event, then its
    attempt waits (for its destination's slot) past the claim's lease; the second claims it.
    The first must not send it too."""
    # The first deliverer's short timeout makes its lease short (3 x timeout + 5 s); the
    # second, on the same data dir, has the usual timeout, so its send does not race a 10 ms
    # deadline on a loaded machine.
    service = build(settings.model_copy(update={"webhook_timeout": 0.01}))
    other = build(settings)
    job, _ = finished_job(service, receiver.url)
    [first] = service.due_events()
    wait_until(lambda: time.time() > first.next_attempt_at + 1.5, 10.0, "the claim to run out")
    [second] = other.due_events()

    assert deliver_now(service, [first]) == [None]
    assert receiver.count() == 0
    assert deliver(other, second).delivered
    assert [r.headers["webhook-id"] for r in receiver.received] == [f"evt_{job.id}"]


# -- the address check at connect time ------------------------------------------------------------


def test_a_url_that_passed_at_submit_is_refused_at_connect_time_when_no_longer_allowed(
    settings: Settings, loopback_service: Fanout, localhost_receiver: Receiver
) -> None:
    service, receiver = loopback_service, localhost_receiver
    job, _ = finished_job(service, receiver.url)
    strict = build(settings.model_copy(update={"webhook_allow_networks": []}))

    attempt = deliver(strict, the_event(strict, job.id))

    assert attempt.status_code is None
    assert attempt.error is not None and "UnsafeURL" in attempt.error
    assert receiver.count() == 0
    assert the_event(service, job.id).history[0].error == attempt.error


def send(event: WebhookEvent, allow: list[webhooks.Network]) -> webhooks.Attempt:
    async def attempt() -> webhooks.Attempt:
        return await webhooks.send(event, notifier_client(), allow, 5.0)

    return asyncio.run(attempt())


def event_to(url: str) -> WebhookEvent:
    return WebhookEvent(
        id=EventId("evt_test"),
        job_id=JobId("job_test"),
        url=url,
        secret=SECRET,
        payload=b'{"type":"job.succeeded"}',
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=0.0,
    )


def test_send_refuses_localhost_unless_loopback_is_allowed(localhost_receiver: Receiver) -> None:
    receiver = localhost_receiver
    refused = send(event_to(receiver.url), [])
    assert receiver.count() == 0
    sent = send(event_to(receiver.url), LOOPBACK)

    assert refused.status_code is None
    assert refused.error is not None and "UnsafeURL" in refused.error
    assert sent.delivered
    assert receiver.count() == 1
    Webhook(SECRET).verify(receiver.received[0].body, receiver.received[0].headers)


def test_resolve_allows_localhost_only_in_an_allowed_network() -> None:
    with pytest.raises(webhooks.UnsafeURL):
        webhooks.resolve("http://localhost:8000/hook", [])
    assert webhooks.resolve("http://localhost:8000/hook", LOOPBACK).is_loopback


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0.0.0.0/",
        "http://10.0.0.1/",
        "http://10.255.255.255:8080/",
        "http://172.31.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.100.100.200/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://[::1]/",
        "http://[::]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        # IPv4 addresses wrapped in IPv6: 6to4 (loopback, metadata, 10.x), NAT64 (the well-known
        # prefix, and the local-use one as a whole), IPv4-compatible and IPv4-translated forms.
        "http://[2002:7f00:1::]/",
        "http://[2002:a9fe:a9fe::]/",
        "http://[2002:a00:1::]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[64:ff9b::c0a8:101]/",
        "http://[64:ff9b:1::5db8:d70e]/",
        "http://[::7f00:1]/",
        "http://[::ffff:0:7f00:1]/",
        # Teredo, the other IETF protocol assignments, documentation, discard, site-local,
        # multicast.
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
        "http://[2001:db8::1]/",
        "http://[3fff::1]/",
        "http://[100::1]/",
        "http://[fec0::1]/",
        "http://[ff02::1]/",
        # Azure's host endpoint, IETF protocol assignments, benchmarking, reserved, broadcast,
        # the old 6to4 relay.
        "http://168.63.129.16/",
        "http://192.0.0.192/",
        "http://192.0.0.8/",
        "http://198.18.0.1/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
        "http://192.88.99.1/",
    ],
)
def test_resolve_refuses_every_address_that_is_not_globally_routable(url: str) -> None:
    with pytest.raises(webhooks.UnsafeURL):
        webhooks.resolve(url, [])


@pytest.mark.parametrize(
    "url",
    ["http://[2002:7f00:1::]:8000/hook", "http://[64:ff9b::a9fe:a9fe]/", "http://192.0.0.192/"],
)
def test_a_wrapped_or_special_address_is_refused_at_submit(service: Fanout, url: str) -> None:
    request = JobRequest(task="echo", items=[1], params={}, webhook_url=url)

    with pytest.raises(InvalidJob) as refused:
        service.submit(TENANT, request)

    assert refused.value.errors[0]["field"] == "webhook.url"


def test_a_wrapped_loopback_address_is_refused_at_connect_time_without_connecting() -> None:
    attempt = send(event_to("http://[2002:7f00:1::]:9/hook"), LOOPBACK)

    assert attempt.status_code is None
    assert attempt.error is not None and "UnsafeURL" in attempt.error


def test_an_allowed_network_admits_only_its_own_addresses() -> None:
    allow = [ipaddress.ip_network("10.0.0.0/8")]

    assert str(webhooks.resolve("http://10.1.2.3/", allow)) == "10.1.2.3"
    with pytest.raises(webhooks.UnsafeURL):
        webhooks.resolve("http://192.168.1.1/", allow)
    with pytest.raises(webhooks.UnsafeURL):
        webhooks.resolve("http://169.254.169.254/", allow)


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/hook",
        "https://[2606:4700::1111]/",
        "http://[2002:5db8:d70e::1]/",  # 6to4 of a public address
        "http://[64:ff9b::5db8:d70e]/",  # NAT64 of a public address
        "http://[::ffff:93.184.215.14]/",
    ],
)
def test_resolve_allows_a_public_address(url: str) -> None:
    assert webhooks.resolve(url, []).is_global


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1/", "127.0.0.1/hook", "http:///hook", "http://[::1/", "http://a..b/"],
)
def test_resolve_refuses_a_malformed_url(url: str) -> None:
    for _ in range(2):  # again: parsed URLs are remembered, refusals are not
        with pytest.raises(webhooks.UnsafeURL):
            webhooks.resolve(url, LOOPBACK)


def test_a_reducer_value_that_overflows_is_null_in_the_webhook_body_never_infinity(
    service: Fanout, receiver: Receiver
) -> None:
    request = JobRequest(
        task="echo", items=[1e308, 1e308], params={}, webhook_url=receiver.url, reduce="sum"
    )
    job, _ = service.submit(TENANT, request)
    while chunk_worker.poll_once(service):
        pass

    deliver(service, the_event(service, job.id))

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    payload = json.loads(receiver.received[0].body, parse_constant=refuse)
    assert payload["data"]["result"] is None
