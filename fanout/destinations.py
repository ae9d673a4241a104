"""Where webhooks may go: only globally routable addresses, unless an operator allows a network.

The tables are IANA's special-purpose address registries (RFC 6890 and updates), entries whose
"Globally Reachable" is False, written out rather than taken from `ipaddress.is_global`, whose
tables differ between Python versions (3.11 misses 192.0.0.0/24 and 64:ff9b:1::/48). An IPv6
address that carries an IPv4 address (IPv4-mapped, NAT64, 6to4) is judged by that IPv4 address,
since that is where the packets end up. The check runs at submit and again at connect time, on
every address the name resolves to.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Sequence
from typing import NamedTuple
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _networks(*cidrs: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


V4_REFUSED = _networks(
    "0.0.0.0/8",  # "this network": 0.0.0.0 reaches the local host on Linux
    "10.0.0.0/8",
    "100.64.0.0/10",  # carrier-grade NAT; Alibaba Cloud's metadata (100.100.100.200)
    "127.0.0.0/8",
    "169.254.0.0/16",  # link-local; the AWS, GCP, Azure and ECS metadata endpoints
    "172.16.0.0/12",
    "192.0.0.0/24",  # IETF protocol assignments (192.0.0.192 and friends)
    "192.0.2.0/24",
    "192.88.99.0/24",  # the retired 6to4 relay anycast
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and 255.255.255.255
    "168.63.129.16/32",  # Azure's host endpoint (WireServer): public-looking, but the host's own
)
# IPv6 unicast that is routed on the internet lies in 2000::/3 (RFC 4291 section 2.4); the rest
# (::1, ::, IPv4-compatible ::/96, 100::/64, fc00::/7, fe80::/10, fec0::/10, ff00::/8,
# 64:ff9b:1::/48, ...) is refused as a whole. Within it, these are not global:
V6_GLOBAL = ipaddress.IPv6Network("2000::/3")
V6_REFUSED = _networks(
    "2001::/23",  # IETF protocol assignments, Teredo (2001::/32) included
    "2001:db8::/32",  # documentation
    "3fff::/20",  # documentation (RFC 9637)
)
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the last 32 bits are the IPv4 address


class UnsafeURL(ValueError):
    """The webhook URL is malformed, or points where the service must not send requests."""


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address delivers to: IPv4-mapped, NAT64, 6to4."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return address.sixtofour


def forbidden(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return forbidden(inner)
        return (
            address not in V6_GLOBAL
            or any(address in network for network in V6_REFUSED)
            or not address.is_global
        )
    return any(address in network for network in V4_REFUSED) or not address.is_global


class Target(NamedTuple):
    """An absolute http(s) URL the sender can request, as it dials and writes it."""

    scheme: str
    host: str
    port: int
    # The Host header: the name IDNA-encoded, the port unless the scheme's default, no
    # credentials; and the request target: path and query, percent-encoded (as httpx writes them).
    authority: bytes
    path: bytes


@functools.lru_cache(maxsize=1024)
def target(url: str) -> Target:
    """The URL parsed once, for an attempt: what `parts` gives, and the request's Host header
    and target. Remembered for the last 1,024 URLs: the notifier asks twice per attempt (its
    per-destination limit, then the attempt), and a service's jobs mostly share a few webhook
    URLs; parsing took a fifth of the notifier's time under the small-job load."""
    # Imported here: httpx takes ~50 ms to import (without its command-line client: see
    # `fanout/__init__.py`), which the queue-side Lambda handlers, importing this module but
    # never sending, should not pay for on every cold start.
    import httpx

    try:
        parsed = httpx.URL(url)  # refuses what the sender could not request (control characters)
        split = urlsplit(url)
        port = split.port or (443 if split.scheme == "https" else 80)
        authority, path = parsed.netloc, parsed.raw_path
    except (ValueError, httpx.InvalidURL) as error:
        raise UnsafeURL(f"is not a valid URL: {error}") from error
    if split.scheme not in ("http", "https") or not split.hostname:
        raise UnsafeURL("must be an absolute http or https URL")
    return Target(split.scheme, split.hostname, port, authority, path)


def parts(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of an absolute http(s) URL the sender can request."""
    scheme, host, port, _, _ = target(url)
    return scheme, host, port


def literal(host: str) -> Address | None:
    """The address `host` is, written in the standard notation (`127.0.0.1`, `::1`, as a URL's
    host after `parts`), else None: a name, or another form of address `lookup` reads."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def lookup(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to (IP literals, in any form inet_aton reads, included)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise UnsafeURL(f"cannot resolve {host}: {error.strerror}") from error
    except UnicodeError as error:  # the IDNA codec refuses empty or over-long labels
        raise UnsafeURL(f"{host} is not a valid host name") from error
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def checked(host: str, addresses: Sequence[Address], allow: Sequence[Network]) -> Address:
    """The address to connect to; every address must be allowed, so a name that mixes a public
    and a private address is refused."""
    for address in addresses:
        if forbidden(address) and not any(address in network for network in allow):
            raise UnsafeURL(
                f"{host} resolves to {address}, which is not a globally routable address"
                " (loopback, private, link-local, metadata, or one of IANA's special"
                " ranges); list its network in FANOUT_WEBHOOK_ALLOW_NETWORKS to allow it"
            )
    return addresses[0]


def resolve(url: str, allow: Sequence[Network]) -> Address:
    _, host, port = parts(url)
    return checked(host, lookup(host, port), allow)


def check_url(url: str, allow: Sequence[Network]) -> None:
    resolve(url, allow)
