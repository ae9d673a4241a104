"""boto3 clients, created once and passed to every adapter, and vendor error translation.

boto3 is imported here only, and only when the first client is used: a laptop running the
embedded default never imports it, and a Lambda function imports it on its first event, not at
its cold start (it costs ~270 ms).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fanout.errors import BackendError, StoreUnavailable

CONDITION_FAILED = "ConditionalCheckFailedException"


class LazyClient:
    """A boto3 client made on its first use. Making one loads its service's model (tens of ms
    each), so a cold start makes none, and a Lambda function makes only the clients it calls."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._client: Any = None
        self._hooks: list[Callable[[Any], None]] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._made(), name)

    def _made(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    made = self._make()
                    for hook in self._hooks:
                        hook(made)
                    self._client = made
                client = self._client
        return client

    def when_made(self, hook: Callable[[Any], None]) -> None:
        """Call `hook` with the client once it is made (now, if it already is)."""
        with self._lock:
            if self._client is None:
                self._hooks.append(hook)
                return
        hook(self._client)


def when_made(client: Any, hook: Callable[[Any], None]) -> None:
    """`hook(client)` for a client made already, or when a `LazyClient` makes its own."""
    if isinstance(client, LazyClient):
        client.when_made(hook)
    else:
        hook(client)


class _Maker:
    """boto3, its session and the clients' config, when the first client is made (a boto3
    session is not thread-safe: clients are made one at a time)."""

    def __init__(self, session: Any, endpoint_url: str | None) -> None:
        self.session = session
        self.endpoint_url = endpoint_url
        self.config: Any = None
        self.lock = threading.Lock()

    def client(self, name: str) -> Any:
        with self.lock:
            if self.config is None:
                self.session, self.config = _session(self.session)
            return self.session.client(name, endpoint_url=self.endpoint_url, config=self.config)


def _session(session: Any) -> tuple[Any, Any]:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        raise ImportError("the AWS backend needs boto3: pip install 'fanout[aws]'") from error
    # Standard retry mode backs off on throttling; the pool serves a threaded poller.
    config = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)
    return session or boto3.session.Session(), config


@dataclass(frozen=True)
class Clients:
    dynamodb: Any
    streams: Any
    sqs: Any
    s3: Any

    @classmethod
    def create(cls, session: Any = None, endpoint_url: str | None = None) -> Clients:
        """Clients from a boto3 session (default: the environment's credentials and region;
        `AWS_ENDPOINT_URL` is honoured by boto3 itself when `endpoint_url` is None). Each is
        made on its first use, and boto3 is imported then."""
        maker = _Maker(session, endpoint_url)
        names = ("dynamodb", "dynamodbstreams", "sqs", "s3")
        return cls(*(LazyClient(functools.partial(maker.client, name)) for name in names))


def error_code(error: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError; None for anything else."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return code if isinstance(code, str) else None


def condition_failed(error: BaseException) -> bool:
    return error_code(error) == CONDITION_FAILED


# Answers that mean "not now", still there after botocore's own retries: the caller may try
# again later (HTTP: 503 with Retry-After), nothing was written.
UNAVAILABLE = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalServerError",
}


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Raise a vendor failure as `BackendError` (`StoreUnavailable` for throttling and
    outages), naming what was being done."""
    try:
        yield
    except Exception as error:
        code = error_code(error)
        if code is None:
            raise
        if code in UNAVAILABLE:
            raise StoreUnavailable(f"{what}: {error}") from error
        raise BackendError(f"{what}: {error}") from error
