"""The moto server the AWS tests talk to over HTTP, and fresh AWS resources on it.

One server per test session, started on first use on a free port. Each backend gets its own
table, queues and bucket: moto's queries and queues slow down as they grow.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from fanout.service import Backend
from fanout.settings import Settings
from tests.contract.support import BackendUnavailable

REGION = "us-east-1"
_lock = threading.Lock()
_endpoint: str | None = None
_names = itertools.count()


def endpoint() -> str:
    """The server's URL, starting it the first time."""
    global _endpoint
    with _lock:
        if _endpoint is None:
            try:
                from moto.server import ThreadedMotoServer
            except ImportError as error:
                raise BackendUnavailable(f"moto[server] is not installed: {error}") from error
            logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            atexit.register(server.stop)
            # werkzeug's server hands each request to `server.app`; no request has come yet.
            wsgi = server._server
            assert wsgi is not None
            wsgi.app = one_dynamodb_request_at_a_time(wsgi.app)
            host, port = server.get_host_and_port()
            _endpoint = f"http://{host}:{port}"
        return _endpoint


def one_dynamodb_request_at_a_time(app: Any) -> Callable[..., Iterable[bytes]]:
    """DynamoDB applies a conditional write atomically; moto's threaded server checks the
    condition and writes in two steps, so two racing writers could both pass (seen here: two
    winners of one `claim_completion`). Serializing DynamoDB's requests restores AWS's
    semantics; SQS's (long polls among them) still run side by side."""
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            body: Iterable[bytes] = app(environ, start_response)
            return body
        with lock:
            return list(app(environ, start_response))

    return serve


def clients() -> Any:
    """boto3 clients pointed at the server, with throwaway credentials."""
    try:
        import boto3
    except ImportError as error:
        raise BackendUnavailable(f"boto3 is not installed: {error}") from error
    from fanout.backends.aws import Clients

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    return Clients.create(session, endpoint_url=endpoint())


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
