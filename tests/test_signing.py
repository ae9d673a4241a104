"""One webhook attempt as a real receiver on loopback sees it (`fanout.webhooks.send`): the
Standard Webhooks headers and signature, the secret, the request line and Host header, the
checked address dialled (IPv4, IPv6, TLS with the URL's name), and the attempt's bounds (one
deadline, a bounded read of the answer).

Written to kill the mutants `python -m bench mutation` found surviving in `fanout/webhooks.py`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import msgspec
import pytest
import trustme
from standardwebhooks import Webhook

from fanout import webhooks
from fanout.models import EventId, JobId, WebhookEvent
from fanout.workers.notifier import client as notifier_client
from tests.webhook_receiver import Answer, Receiver, receiving

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
PAYLOAD = b'{"type":"job.succeeded","data":{"id":"job_1","note":"caf\xc3\xa9"}}'


def event_to(url: str, secret: str = SECRET) -> WebhookEvent:
    return WebhookEvent(
        id=EventId("evt_job_1"),
        job_id=JobId("job_1"),
        url=url,
        secret=secret,
        payload=PAYLOAD,
    )


def send(
    event: WebhookEvent,
    timeout: float = 5.0,
    limit: int = webhooks.MAX_RESPONSE_BYTES,
    http: webhooks.Client | None = None,
) -> webhooks.Attempt:
    async def attempt() -> webhooks.Attempt:
        return await webhooks.send(event, http or notifier_client(), LOOPBACK, timeout, limit)

    return asyncio.run(attempt())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as state:
        yield state


# -- what the receiver gets -----------------------------------------------------------------------


def test_the_request_carries_the_standard_webhooks_headers_and_verifies_with_the_secret(
    receiver: Receiver,
) -> None:
    before = int(time.time())
    attempt = send(event_to(receiver.url + "?source=fanout"))
    after = int(time.time())

    assert attempt == webhooks.Attempt(200, None, None) and attempt.delivered
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/hook?source=fanout")
    assert request.body == PAYLOAD  # signed and sent byte for byte
    assert request.headers["webhook-id"] == "evt_job_1"
    assert before <= int(request.headers["webhook-timestamp"]) <= after
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "fanout-webhooks/1"
    assert request.headers["connection"] == "close"  # one request a connection
    verified = Webhook(SECRET).verify(request.body, request.headers)
    assert verified["data"]["note"] == "café"


def test_a_signature_made_with_another_secret_does_not_verify(receiver: Receiver) -> None:
    send(event_to(receiver.url, secret=webhooks.new_secret()))

    [request] = receiver.requests
    with pytest.raises(Exception, match="signature"):
        Webhook(SECRET).verify(request.body, request.headers)


def test_the_signature_covers_the_sent_timestamp_on_a_host_outside_utc(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signed timestamp is the epoch second sent in `webhook-timestamp` whatever the host's
    time zone (a naive local time would be signed as if it were UTC: hours off)."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        before = int(time.time())
        send(event_to(receiver.url))
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()

    [request] = receiver.requests
    assert before <= int(request.headers["webhook-timestamp"]) <= before + 60
    Webhook(SECRET).verify(request.body, request.headers)


def test_a_new_secret_is_a_whsec_key_of_random_bytes_the_spec_allows() -> None:
    """Standard Webhooks: `whsec_` then base64 of a key of 24 to 64 random bytes."""
    secrets = {webhooks.new_secret() for _ in range(20)}

    assert len(secrets) == 20
    for secret in secrets:
        prefix, _, key = secret.partition("_")
        assert prefix == "whsec" and 24 <= len(base64.b64decode(key, validate=True)) <= 64
        Webhook(secret).sign("evt_1", datetime.now(UTC), "{}")


def test_the_host_header_keeps_the_url_s_host_and_port_but_not_its_credentials(
    receiver: Receiver,
) -> None:
    port = receiver.url.split(":")[2].split("/")[0]
    url = receiver.url.replace("http://", "http://user:pass@")

    assert send(event_to(url)).delivered

    [request] = receiver.requests
    assert request.headers["host"] == f"127.0.0.1:{port}"
    assert "authorization" not in request.headers


def test_an_ipv6_receiver_is_dialled_at_its_bracketed_address() -> None:
    with receiving("::1") as receiver:
        assert receiver.url.startswith("http://[::1]:")
        attempt = send(event_to(receiver.url))

    assert attempt.delivered and len(receiver.requests) == 1


def test_a_refused_address_names_the_host_in_the_attempt_s_error() -> None:
    async def attempt() -> webhooks.Attempt:
        return await webhooks.send(event_to("http://localhost:9/hook"), notifier_client(), [], 5.0)

    refused = asyncio.run(attempt())

    assert refused.status_code is None and refused.retry_after is None
    assert refused.error is not None and refused.error.startswith("UnsafeURL: localhost resolves")


# -- TLS: the checked address is dialled, the URL's name is verified ------------------------------


def test_tls_verifies_the_certificate_against_the_url_s_name_though_an_address_is_dialled() -> None:
    """The certificate names `localhost` only; the connection goes to the checked IP address,
    with `localhost` as the TLS server name (SNI), so verification passes."""
    authority = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server)
    client = ssl.create_default_context()
    authority.configure_trust(client)
    first = str(socket.getaddrinfo("localhost", 0)[0][4][0])

    with receiving(first, "localhost", tls=server) as receiver:
        attempt = send(event_to(receiver.url), http=webhooks.Client(client))

    assert attempt == webhooks.Attempt(200, None, None)
    [request] = receiver.requests
    assert request.headers["host"] == receiver.url.split("/")[2]
    Webhook(SECRET).verify(request.body, request.headers)


# -- the attempt's bounds -------------------------------------------------------------------------


def test_an_answer_longer_than_the_limit_is_cut_off_there_and_counts_as_delivered(
    receiver: Receiver,
) -> None:
    """The receiver announces 10 MB, sends 100 KiB and holds the connection: the read stops at
    the 64 KiB limit, well before the deadline, and the 200 counts."""
    receiver.answer = Answer(body=b"x" * 100 * 1024, length=10_000_000, stall=True)

    assert send(event_to(receiver.url), timeout=10.0) == webhooks.Attempt(200, None, None)


def test_an_answer_that_reaches_the_limit_exactly_is_read_no_further(receiver: Receiver) -> None:
    receiver.answer = Answer(body=b"x" * 1000, length=10_000, stall=True)

    assert send(event_to(receiver.url), timeout=10.0, limit=1000).delivered


def test_an_answer_one_byte_short_of_the_limit_that_never_ends_runs_out_the_deadline(
    receiver: Receiver,
) -> None:
    receiver.answer = Answer(body=b"x" * 999, length=10_000, stall=True)

    attempt = send(event_to(receiver.url), timeout=0.5, limit=1000)

    assert attempt == webhooks.Attempt(None, "TimeoutError: no complete answer within 0.5 s", None)


def test_a_receiver_dripping_its_answer_is_cut_off_at_the_one_deadline(
    receiver: Receiver,
) -> None:
    """A byte every 50 ms never trips a per-read timeout; the deadline over the whole attempt
    ends it, and the attempt is a timeout, not a delivery."""
    receiver.answer = Answer(body=b"x" * 60, drip=0.05)

    attempt = send(event_to(receiver.url), timeout=0.5)

    assert attempt == webhooks.Attempt(None, "TimeoutError: no complete answer within 0.5 s", None)
    assert not attempt.delivered and not attempt.final


# -- the exchange (`fanout.http1`): what the receiver answers, and what it does not ---------------


@contextlib.contextmanager
def raw_receiver(serve: Callable[[socket.socket], object]) -> Iterator[str]:
    """A loopback listener whose first connection `serve` handles byte by byte; its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10.0)

    def accept() -> None:
        with contextlib.suppress(OSError):
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(10.0)
                serve(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        thread.join(timeout=15.0)
        listener.close()


def read_request(connection: socket.socket) -> bytes:
    """The request's head and as much of its body as has come with it."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_a_redirect_is_the_attempt_s_answer_and_is_not_followed(receiver: Receiver) -> None:
    """Following it would send the event where the address check never looked."""
    with receiving() as elsewhere:
        receiver.answer = Answer(status=307, headers={"location": elsewhere.url})

        attempt = send(event_to(receiver.url))

        assert attempt == webhooks.Attempt(307, None, None)
        assert not attempt.delivered and not attempt.final
        assert len(receiver.requests) == 1 and elsewhere.requests == []


def test_an_interim_answer_is_skipped_for_the_final_one() -> None:
    def serve(connection: socket.socket) -> None:
        read_request(connection)
        connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")

    with raw_receiver(serve) as url:
        assert send(event_to(url)) == webhooks.Attempt(204, None, None)


def test_a_receiver_that_closes_without_answering_gives_an_error_not_a_delivery() -> None:
    with raw_receiver(read_request) as url:
        attempt = send(event_to(url), timeout=5.0)

    assert attempt.status_code is None and attempt.error is not None
    assert attempt.error.startswith("RemoteProtocolError")


def test_an_answer_whose_head_never_ends_is_cut_off_at_64_kib_not_at_the_deadline() -> None:
    """Header lines past 64 KiB are an error at once: the head is never buffered unbounded."""
    stop = threading.Event()

    def serve(connection: socket.socket) -> None:
        read_request(connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\n")
        with contextlib.suppress(OSError):
            for _ in range(1000):  # 1 MB of headers at most, until the sender hangs up
                connection.sendall(b"x-padding: " + b"a" * 1000 + b"\r\n")
            stop.wait(10.0)

    started = time.monotonic()
    with raw_receiver(serve) as url:
        attempt = send(event_to(url), timeout=10.0)
        stop.set()

    assert attempt.status_code is None and attempt.error is not None
    assert attempt.error.startswith("RemoteProtocolError")
    assert time.monotonic() - started < 5.0


def test_a_receiver_that_reads_nothing_has_its_connection_dropped_at_the_deadline() -> None:
    """The event is larger than the sockets' buffers, so the send blocks; at the deadline the
    connection is dropped (not left open waiting to flush): the receiver then reads what was
    buffered and sees the connection end."""
    seen: list[bytes] = []
    attempted = threading.Event()

    def serve(connection: socket.socket) -> None:
        attempted.wait(10.0)  # reads nothing until the attempt is over
        while chunk := connection.recv(1 << 20):
            seen.append(chunk)
        seen.append(b"<closed>")

    with raw_receiver(serve) as url:
        large = msgspec.structs.replace(event_to(url), payload=b"x" * (16 << 20))
        attempt = send(large, timeout=0.5)
        attempted.set()

    assert attempt == webhooks.Attempt(None, "TimeoutError: no complete answer within 0.5 s", None)
    assert seen[-1] == b"<closed>"
    assert sum(map(len, seen[:-1])) < 16 << 20


def test_the_attempt_dials_the_checked_address_not_just_any_loopback() -> None:
    """A receiver listening on 127.0.0.2 alone gets the attempt (Linux routes 127.0.0.0/8 to
    loopback): the connection goes to the address checked, not to a default host."""
    with receiving("127.0.0.2") as receiver:
        attempt = send(event_to(receiver.url))

    assert attempt == webhooks.Attempt(200, None, None)
    assert len(receiver.requests) == 1


def test_an_answer_head_of_tens_of_kilobytes_is_read_though_it_comes_in_pieces() -> None:
    """The head may take 64 KiB. h11 alone refuses past 16 KiB of a head not yet complete: the
    receiver sends 30 KB of it, pauses half a second (the sender must wait, not give up), then
    ends it; a receiver behind a proxy that adds headers (cookies, tracing) gets its 2xx
    counted."""

    def serve(connection: socket.socket) -> None:
        read_request(connection)
        connection.sendall(b"HTTP/1.1 204 No Content\r\nx-padding: " + b"a" * 30_000)
        connection.settimeout(0.5)
        with contextlib.suppress(TimeoutError):
            if not connection.recv(1):
                return  # the sender gave up on the head
        connection.sendall(b"\r\n\r\n")

    with raw_receiver(serve) as url:
        assert send(event_to(url)) == webhooks.Attempt(204, None, None)
