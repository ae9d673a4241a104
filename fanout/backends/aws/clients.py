"""boto3 clients, created once and passed to every adapter, and vendor error translation.

boto3 is imported here only, and only when the AWS backend is built: a laptop running the
embedded default never imports it (it costs ~270 ms of a cold start).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fanout.errors import BackendError

CONDITION_FAILED = "ConditionalCheckFailedException"


@dataclass(frozen=True)
class Clients:
    dynamodb: Any
    streams: Any
    sqs: Any
    s3: Any

    @classmethod
    def create(cls, session: Any = None, endpoint_url: str | None = None) -> Clients:
        """Clients from a boto3 session (default: the environment's credentials and region;
        `AWS_ENDPOINT_URL` is honoured by boto3 itself when `endpoint_url` is None)."""
        try:
            import boto3
            from botocore.config import Config
        except ImportError as error:  # pragma: no cover - depends on the installed extras
            raise ImportError("the AWS backend needs boto3: pip install 'fanout[aws]'") from error

        session = session or boto3.session.Session()
        # Standard retry mode backs off on throttling; the pool serves a threaded poller.
        config = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)

        def client(name: str) -> Any:
            return session.client(name, endpoint_url=endpoint_url, config=config)

        return cls(client("dynamodb"), client("dynamodbstreams"), client("sqs"), client("s3"))


def error_code(error: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError; None for anything else."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return code if isinstance(code, str) else None


def condition_failed(error: BaseException) -> bool:
    return error_code(error) == CONDITION_FAILED


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Raise a vendor failure as `BackendError`, naming what was being done."""
    try:
        yield
    except Exception as error:
        if error_code(error) is None:
            raise
        raise BackendError(f"{what}: {error}") from error
