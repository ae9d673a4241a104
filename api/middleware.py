"""What every request passes before any route reads its body: a pure ASGI middleware.

In order: in keyless mode only loopback Host names are served (DNS rebinding: 421); unsafe
requests from another origin are refused (CSRF: 403, the Sec-Fetch-Site / Origin check of Go's
`http.CrossOriginProtection`); the API key is checked (an unsafe request without a valid one gets
401 before a byte of its body is read; FastAPI reads a body parameter before dependencies run);
a body must be of a media type its route takes (415) and within FANOUT_MAX_BODY_BYTES (413),
counted as it is read, whatever Content-Length said.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fanout.api.bodies import too_large
from fanout.api.keys import ApiKeys, KeysUnavailable
from fanout.api.problems import Problem, asgi_problem
from fanout.models import TenantId

DEFAULT_TENANT = TenantId("default")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_KNOWN_HOSTS = 64
# Requests that carry their own credential and limit: the PUT of an upload URL from
# `POST /uploads` is signed (like S3's presigned URLs: no API key), and its file may be as large
# as FANOUT_MAX_INPUT_BYTES, which the route enforces.
SELF_SIGNED = (("PUT", re.compile(r"^/uploads/[^/]+$")),)


def self_signed(scope: Scope) -> bool:
    return any(
        scope["method"] == method and path.match(scope["path"]) for method, path in SELF_SIGNED
    )


class BodyTooLarge(HTTPException):
    """Raised from `receive` (an HTTPException, so FastAPI's body reading passes it through)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large(f"over the limit of {limit} bytes"))


def is_loopback_host(host: str, allowed: Sequence[str]) -> bool:
    """`host` is a Host header: a name or address, maybe with a port."""
    name = urlsplit(f"//{host}").hostname or ""
    if name == "localhost" or name.endswith(".localhost") or name in allowed:
        return True  # RFC 6761: .localhost names resolve to loopback
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class BodyTypes:
    """The media types each operation's body may have, as the OpenAPI document declares them
    (so what is refused is what the document says); none for an operation without a body.
    Read from the document on first use."""

    def __init__(self, document: Callable[[], dict[str, Any]]) -> None:
        self.document = document
        self.table: list[tuple[re.Pattern[str], str, frozenset[str]]] | None = None

    def of(self, method: str, path: str) -> frozenset[str]:
        if self.table is None:
            self.table = list(self._read())
        for pattern, verb, types in self.table:
            if verb == method and pattern.fullmatch(path):
                return types
        return frozenset()

    def _read(self) -> Iterator[tuple[re.Pattern[str], str, frozenset[str]]]:
        for template, operations in self.document().get("paths", {}).items():
            pattern = re.compile(re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template)))
            for method, operation in operations.items():
                content = operation.get("requestBody", {}).get("content", {})
                yield pattern, method.upper(), frozenset(content)


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: ApiKeys,
        max_body_bytes: int,
        document: Callable[[], dict[str, Any]],
        allowed_hosts: Sequence[str] = (),
        trusted_origins: Sequence[str] = (),
        streamed: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.keys = keys
        self.max_body_bytes = max_body_bytes
        # Media types read as a stream (an NDJSON body of items), each with its own limit: the
        # route never holds such a body whole, so it may be larger than a JSON one.
        self.streamed = dict(streamed or {})
        self.body_types = BodyTypes(document)
        self.allowed_hosts = allowed_hosts
        self.trusted_origins = frozenset(trusted_origins)
        # Host values already found loopback: every request names one, parsing it costs more
        # than the route polled most (GET /jobs/{id}), and a client sends the same few.
        self.loopback_hosts: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            self._check_host(headers)
            self._check_origin(scope["method"], headers)
            signed = self_signed(scope)
            if not signed:
                scope.setdefault("state", {})["tenant"] = self._tenant(scope["method"], headers)
            limit = None if signed else self._check_body(scope, headers)
        except Problem as problem:
            await asgi_problem(scope, problem)(scope, receive, send)
            return
        await self.app(scope, self._counted(receive, limit) if limit else receive, send)

    def _check_host(self, headers: Headers) -> None:
        host = headers.get("host")
        if not self.keys.open or host is None or host in self.loopback_hosts:
            return
        if is_loopback_host(host, self.allowed_hosts):
            if len(self.loopback_hosts) < MAX_KNOWN_HOSTS:
                self.loopback_hosts.add(host)
        else:
            raise Problem(
                421,
                "Without API keys (FANOUT_API_KEYS) only loopback names (localhost, 127.0.0.1,"
                " [::1]) or FANOUT_ALLOWED_HOSTS are served.",
            )

    def _check_origin(self, method: str, headers: Headers) -> None:
        if method in SAFE_METHODS:
            return
        origin = headers.get("origin")
        if origin in self.trusted_origins:
            return
        site = headers.get("sec-fetch-site")
        if site is not None:
            if site in ("same-origin", "none"):
                return
        elif origin is None or urlsplit(origin).netloc == headers.get("host"):
            return  # not a browser, or a browser on this origin
        raise Problem(403, "Cross-origin requests that change state are refused.")

    def _tenant(self, method: str, headers: Headers) -> TenantId | None:
        """The key's tenant, or None. Safe methods go on without one: the route decides (some,
        like /healthz, are public); unsafe ones stop here, before their body is read. Keys held
        in SSM are read at most once per TTL (a blocking read then, a dict lookup otherwise)."""
        if self.keys.open:
            return DEFAULT_TENANT
        try:
            tenants = self.keys.tenants()
        except KeysUnavailable as error:
            raise Problem(503, "The API keys cannot be read; try again shortly.") from error
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            for key, tenant in tenants.items():
                if hmac.compare_digest(key.encode(), token.strip().encode()):
                    return TenantId(tenant)
        if method in SAFE_METHODS:
            return None
        raise unauthorized()

    def _check_body(self, scope: Scope, headers: Headers) -> int | None:
        """The byte limit of the body that comes (None: no body); refuses one too large by its
        Content-Length, or of a type the route does not take."""
        length = headers.get("content-length")
        if length is None and "transfer-encoding" not in headers:
            return None
        given = headers.get("content-type", "").partition(";")[0].strip().lower()
        limit = self.streamed.get(given, self.max_body_bytes)
        if length is not None and length.isdigit():
            if int(length) == 0:
                return None
            if int(length) > limit:
                raise Problem(413, too_large(f"over the limit of {limit} bytes"))
        accepted = self.body_types.of(scope["method"], scope["path"])
        if accepted and given not in accepted:
            raise Problem(
                415,
                f"The body must be {' or '.join(sorted(accepted))}"
                f" (Content-Type was {given[:100] or 'missing'}).",
            )
        return limit

    def _counted(self, receive: Receive, limit: int) -> Receive:
        read = 0

        async def counted() -> Message:
            nonlocal read
            message = await receive()
            read += len(message.get("body", b""))
            if read > limit:
                raise BodyTooLarge(limit)
            return message

        return counted


def unauthorized() -> Problem:
    return Problem(
        401,
        "Send a configured API key as `Authorization: Bearer <key>`.",
        headers={"www-authenticate": "Bearer"},
    )
