"""Completion webhooks per the Standard Webhooks spec: one attempt, bounded in time and bytes.

Signing uses the `standardwebhooks` package: `webhook-id` is the event id (stable across
retries), `webhook-timestamp` the attempt's time, `webhook-signature` `v1,<HMAC-SHA256>`.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import random
import secrets
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from standardwebhooks import Webhook as Signer

from fanout import destinations
from fanout.destinations import Network, UnsafeURL, check_url, resolve
from fanout.models import WebhookEvent

__all__ = [
    "Attempt",
    "Client",
    "Network",
    "UnsafeURL",
    "check_url",
    "new_secret",
    "next_attempt_at",
    "resolve",
    "send",
]

# At most this much of a receiver's answer is read; the rest is dropped with the connection. Its
# status and headers are all that count (Standard Webhooks: any 2xx is a delivery).
MAX_RESPONSE_BYTES = 64 * 1024
# The longest wait a receiver's `Retry-After` can impose before the next attempt.
MAX_RETRY_AFTER = 24 * 3600.0


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass(frozen=True)
class Attempt:
    status_code: int | None
    error: str | None
    retry_after: float | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def final(self) -> bool:
        """410 Gone means the receiver wants no more (as Stripe and Svix treat it)."""
        return self.delivered or self.status_code == 410


def _retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds (RFC 9110 section 10.2.3: delay-seconds or an HTTP-date); None when
    absent or unreadable, so a receiver's odd header never stops the attempt being recorded."""
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:  # "-0000": UTC, with no zone given
        parsed = parsed.replace(tzinfo=UTC)
    return max(0.0, (parsed - datetime.now(UTC)).total_seconds())


class Client:
    """How attempts connect: the TLS context that checks receivers' certificates (built on the
    first https attempt as httpx builds its own: certifi's authorities, or SSL_CERT_FILE and
    SSL_CERT_DIR). Attempts share nothing else: no pool, no keep-alive (see
    `fanout.workers.notifier.client`)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls

    @property
    def tls(self) -> ssl.SSLContext:
        if self._tls is None:
            import httpx  # its context, for the same authorities the client used before

            self._tls = httpx.create_ssl_context()
        return self._tls


async def send(
    event: WebhookEvent,
    client: Client,
    allow: Sequence[Network],
    timeout: float,
    limit: int = MAX_RESPONSE_BYTES,
) -> Attempt:
    """POST the event once, within one deadline covering the name lookup, connect, send and the
    answer, so a receiver that drips its answer a byte at a time is cut off at `timeout`. At
    most `limit` bytes of the answer are read. Never raises for anything the receiver does."""
    from fanout import http1  # here, not at the top: every process imports this module (h11)

    try:
        async with asyncio.timeout(timeout):
            return await _post(event, client, allow, limit)
    except TimeoutError:
        return Attempt(None, f"TimeoutError: no complete answer within {timeout:g} s", None)
    except (ValueError, OSError, http1.ProtocolError) as error:
        # ValueError: UnsafeURL, a name TLS cannot encode; OSError: refused, reset, TLS failed.
        return Attempt(None, f"{type(error).__name__}: {error}", None)


async def _post(
    event: WebhookEvent, client: Client, allow: Sequence[Network], limit: int
) -> Attempt:
    """The host is resolved and checked here, at connect time, and the request goes to that
    checked address (Host header and TLS server name kept), so DNS rebinding after submit gets
    nowhere. The lookup runs on the loop's executor: getaddrinfo blocks (a host that is an
    address has nothing to look up, and no thread to wait for)."""
    from fanout import http1

    url = destinations.target(event.url)
    given = destinations.literal(url.host)
    found = (
        [given]
        if given is not None
        else await asyncio.get_running_loop().run_in_executor(
            None, destinations.lookup, url.host, url.port
        )
    )
    address = destinations.checked(url.host, found, allow)
    tls = client.tls if url.scheme == "https" else None
    head = _headers(event, url.authority)
    answer = await http1.post(
        str(address), url.port, tls, url.host, head, url.path, event.payload, limit
    )
    return Attempt(answer.status_code, None, _retry_after(answer.header(b"retry-after")))


def _headers(event: WebhookEvent, authority: bytes) -> list[tuple[bytes, bytes]]:
    now = datetime.now(UTC)
    signature = Signer(event.secret).sign(event.id, now, event.payload.decode())
    return [
        (b"host", authority),
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(event.payload)),
        (b"user-agent", b"fanout-webhooks/1"),
        (b"connection", b"close"),
        (b"webhook-id", event.id.encode()),
        (b"webhook-timestamp", b"%d" % int(now.timestamp())),
        (b"webhook-signature", signature.encode()),
    ]


def next_attempt_at(
    attempt: Attempt, attempts_so_far: int, max_attempts: int, base: float, cap: float
) -> float | None:
    """When to try again (exponential backoff with full jitter, `Retry-After` honoured even past
    the backoff cap, up to a day), or None to stop."""
    if attempt.final or attempts_so_far >= max_attempts:
        return None
    delay = random.uniform(base / 2, min(cap, base * 2 ** (attempts_so_far - 1)))
    if attempt.retry_after is not None:
        delay = max(delay, min(attempt.retry_after, MAX_RETRY_AFTER))
    return time.time() + delay
