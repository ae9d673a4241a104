"""Completion webhooks per the Standard Webhooks spec, and the address check that guards them.

Signing uses the `standardwebhooks` package: `webhook-id` is the event id (stable across
retries), `webhook-timestamp` the attempt's time, `webhook-signature` `v1,<HMAC-SHA256>`.
"""

from __future__ import annotations

import base64
import email.utils
import ipaddress
import random
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook as Signer

from fanout.models import WebhookEvent

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# Cloud metadata endpoints that are not in a private range (AWS's IPv6 one, Alibaba's).
METADATA = (ipaddress.ip_network("fd00:ec2::254/128"), ipaddress.ip_network("100.100.100.200/32"))
# The longest wait a receiver's `Retry-After` can impose before the next attempt.
MAX_RETRY_AFTER = 24 * 3600.0


class UnsafeURL(ValueError):
    """The webhook URL is malformed, or points where the service must not send requests."""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _forbidden(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return (
        not address.is_global  # also shared (100.64/10, carrier NAT) and other special ranges
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or any(address in network for network in METADATA)
    )


def _parts(url: str) -> tuple[str, str, int]:
    try:
        httpx.URL(url)  # refuses what the sender could not request (control characters, ...)
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except (ValueError, httpx.InvalidURL) as error:
        raise UnsafeURL(f"is not a valid URL: {error}") from error
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("must be an absolute http or https URL")
    return parts.scheme, parts.hostname, port


def resolve(url: str, allow: Sequence[Network]) -> Address:
    """The address to connect to; every address the host resolves to must be allowed, so a name
    that mixes a public and a private address is refused."""
    _, host, port = _parts(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise UnsafeURL(f"cannot resolve {host}: {error.strerror}") from error
    except UnicodeError as error:  # the IDNA codec refuses empty or over-long labels
        raise UnsafeURL(f"{host} is not a valid host name") from error
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if _forbidden(address) and not any(address in network for network in allow):
            raise UnsafeURL(
                f"{host} resolves to {address}, a loopback, private, link-local or metadata"
                " address; list its network in FANOUT_WEBHOOK_ALLOW_NETWORKS to allow it"
            )
    return addresses[0]


def check_url(url: str, allow: Sequence[Network]) -> None:
    resolve(url, allow)


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


def send(
    event: WebhookEvent, client: httpx.Client, allow: Sequence[Network], timeout: float
) -> Attempt:
    """POST the event once. The host is resolved and checked here, at connect time, and the
    request goes to that checked address, so DNS rebinding after submit gets nowhere."""
    now = datetime.now(UTC)
    body = event.payload.decode()
    headers = {
        "content-type": "application/json",
        "user-agent": "fanout-webhooks/1",
        "webhook-id": event.id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Signer(event.secret).sign(event.id, now, body),
    }
    try:
        address = resolve(event.url, allow)
        parts = urlsplit(event.url)
        host = f"[{address}]" if address.version == 6 else str(address)
        target = parts._replace(netloc=f"{host}:{parts.port or _parts(event.url)[2]}").geturl()
        headers["host"] = parts.netloc.rpartition("@")[2]
        response = client.post(
            target,
            content=body,
            headers=headers,
            timeout=timeout,
            extensions={"sni_hostname": parts.hostname or ""},
        )
    except (UnsafeURL, httpx.HTTPError) as error:
        return Attempt(None, f"{type(error).__name__}: {error}", None)
    retry_after = _retry_after(response.headers.get("retry-after"))
    return Attempt(response.status_code, None, retry_after)


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
