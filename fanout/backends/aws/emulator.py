"""AWS on a laptop: moto's server (DynamoDB with Streams, SQS, S3, SSM), made exact for fanout.

DynamoDB applies a conditional write atomically. moto's threaded server checks the condition
and then writes, in two steps, so two writers racing on one item can both pass: 300 contested
conditional ADDs gave 318 winners here, and two aggregators counting one job would double count.
Serializing DynamoDB's requests restores AWS's semantics; SQS's (long polls among them) and
S3's still run side by side. `fanout aws emulator` runs this; so do the tests.

Needs the `emulator` extra (`pip install 'fanout[aws,emulator]'`): moto is never imported
otherwise, and never on Lambda.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

REGION = "us-east-1"
# What boto3 needs to talk to the emulator: any credentials do, moto checks none.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


def one_dynamodb_request_at_a_time(app: Any) -> Callable[..., Iterable[bytes]]:
    """The WSGI app, with DynamoDB's requests (told by their `X-Amz-Target`) run one at a time
    and their whole response produced inside the lock."""
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            body: Iterable[bytes] = app(environ, start_response)
            return body
        with lock:
            return list(app(environ, start_response))

    return serve


class Emulator:
    """moto's threaded server on `host:port` (port 0: a free one), DynamoDB serialized."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as error:
            raise ImportError(
                "the AWS emulator needs moto's server: pip install 'fanout[aws,emulator]'"
            ) from error
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
        self.server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)

    def start(self) -> str:
        """Start serving; returns the endpoint URL (for AWS_ENDPOINT_URL)."""
        self.server.start()
        # werkzeug hands each request to `server.app`; no request has come yet. moto has no
        # public hook for this: `_server` is its werkzeug server.
        wsgi = self.server._server
        assert wsgi is not None, "moto's server did not start"
        wsgi.app = one_dynamodb_request_at_a_time(wsgi.app)
        host, port = self.server.get_host_and_port()
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.stop()
