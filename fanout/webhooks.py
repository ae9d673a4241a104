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
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from standardwebhooks import Webhook as Signer

from fanout import destinations
from fanout.destinations import Network, UnsafeURL, check_url, resolve
from fanout.models import WebhookEvent

if TYPE_CHECKING:
    import httpx

__all__ = [
    "Attempt",
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


async def send(
    event: WebhookEvent,
    client: httpx.AsyncClient,
    allow: Sequence[Network],
    timeout: float,
    limit: int = MAX_RESPONSE_BYTES,
) -> Attempt:
    """POST the event once, within one deadline covering the name lookup, connect, send and the
    answer, so a receiver that drips its answer a byte at a time is cut off at `timeout`. At
    most `limit` bytes of the answer are read. Never raises for anything the receiver does."""
    import httpx  # here, not at the top: see fanout.destinations.parts

    try:
        async with asyncio.timeout(timeout):
            return await _post(event, client, allow, limit, timeout)
    except TimeoutError:
        return Attempt(None, f"TimeoutError: no complete answer within {timeout:g} s", None)
    except (UnsafeURL, httpx.HTTPError) as error:
        return Attempt(None, f"{type(error).__name__}: {error}", None)


async def _post(
    event: WebhookEvent,
    client: httpx.AsyncClient,
    allow: Sequence[Network],
    limit: int,
    timeout: float,
) -> Attempt:
    """The host is resolved and checked here, at connect time, and the request goes to that
    checked address (Host header and TLS server name kept), so DNS rebinding after submit gets
    nowhere. The lookup runs on the loop's executor: getaddrinfo blocks (a host that is an
    address has nothing to look up, and no thread to wait for)."""
    _, host, port = destinations.parts(event.url)
    given = destinations.literal(host)
    found = (
        [given]
        if given is not None
        else await asyncio.get_running_loop().run_in_executor(None, destinations.lookup, host, port)
    )
    address = destinations.checked(host, found, allow)
    parts = urlsplit(event.url)
    literal = f"[{address}]" if address.version == 6 else str(address)
    request = client.build_request(
        "POST",
        parts._replace(netloc=f"{literal}:{port}").geturl(),
        content=event.payload,
        headers=_headers(event, parts.netloc.rpartition("@")[2]),
        extensions={"sni_hostname": host},
        timeout=timeout,  # the deadline above is the one that counts
    )
    response = await client.send(request, stream=True)
    try:
        await _read_some(response, limit)
    finally:
        await response.aclose()  # the unread rest goes with the connection
    return Attempt(response.status_code, None, _retry_after(response.headers.get("retry-after")))


async def _read_some(response: httpx.Response, limit: int) -> None:
    """Read up to `limit` bytes of the answer (a response a transport built in memory has
    none left to read)."""
    if response.is_stream_consumed:
        return
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read >= limit:
            return


def _headers(event: WebhookEvent, host: str) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "host": host,
        "content-type": "application/json",
        "user-agent": "fanout-webhooks/1",
        "webhook-id": event.id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Signer(event.secret).sign(event.id, now, event.payload.decode()),
    }


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
