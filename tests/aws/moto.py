"""The moto server the AWS tests talk to over HTTP, and fresh AWS resources on it.

One server per test session, started on first use on a free port. Each backend gets its own
table, queues and bucket: moto's queries and queues slow down as they grow.
"""

from __future__ import annotations

import atexit
import itertools
import threading
from typing import Any

from fanout.backends.aws.emulator import CREDENTIALS, Emulator
from fanout.service import Backend
from fanout.settings import Settings
from tests.contract.support import BackendUnavailable

REGION = "us-east-1"
_lock = threading.Lock()
_endpoint: str | None = None
_names = itertools.count()


def endpoint() -> str:
    """The server's URL, starting it the first time (the emulator `fanout aws emulator` runs:
    DynamoDB's requests serialized, as AWS applies conditional writes atomically)."""
    global _endpoint
    with _lock:
        if _endpoint is None:
            try:
                emulator = Emulator()
            except ImportError as error:
                raise BackendUnavailable(f"moto[server] is not installed: {error}") from error
            _endpoint = emulator.start()
            atexit.register(emulator.stop)
        return _endpoint


def environment() -> dict[str, str]:
    """The variables that point a process's boto3 at the server."""
    return {"AWS_ENDPOINT_URL": endpoint(), **CREDENTIALS}


def session() -> Any:
    try:
        import boto3
    except ImportError as error:
        raise BackendUnavailable(f"boto3 is not installed: {error}") from error
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )


def client(service: str) -> Any:
    """A boto3 client of `service` on the server."""
    return session().client(service, endpoint_url=endpoint())


def clients() -> Any:
    """boto3 clients pointed at the server, with throwaway credentials."""
    from fanout.backends.aws import Clients

    return Clients.create(session(), endpoint_url=endpoint())


def fresh_settings(settings: Settings) -> tuple[Settings, Any]:
    """`settings` pointed at a new table, new queues and a new bucket on the server."""
    from fanout.backends.aws.bootstrap import bootstrap

    made = clients()
    name = f"fanout-{next(_names)}"
    aws = settings.model_copy(
        update={"backend": "aws", "table": name, "bucket": name, "receive_wait_seconds": 0}
    )
    environment = bootstrap(aws, made)
    return aws.model_copy(
        update={
            "chunk_queue_url": environment["FANOUT_CHUNK_QUEUE_URL"],
            "dead_letter_queue_url": environment["FANOUT_DEAD_LETTER_QUEUE_URL"],
            "notify_queue_url": environment["FANOUT_NOTIFY_QUEUE_URL"],
        }
    ), made


def moto_backend(settings: Settings) -> Backend:
    """The contract suite's "aws" backend: fresh resources on the moto server."""
    from fanout.wiring import aws_backend

    aws, made = fresh_settings(settings)
    return aws_backend(aws, made)
