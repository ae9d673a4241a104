"""A local webhook receiver: an http.server in a thread that notes when each job's event came."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    at: float  # time.perf_counter() when the request's body had been read
    headers: dict[str, str]
    body: bytes

    def payload(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """Listens on 127.0.0.1 at a free port; `wait(job_id)` returns that job's first event."""

    def __init__(self) -> None:
        self._events: dict[str, Received] = {}
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                at = time.perf_counter()
                self.send_response(204)
                self.end_headers()
                receiver._record(Received(at, dict(self.headers.items()), body))

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: one line per webhook would interleave with the table."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def start(self) -> None:
        self._thread.start()

    def _record(self, received: Received) -> None:
        try:
            job_id = str(received.payload()["data"]["id"])
        except (ValueError, KeyError, TypeError):
            return
        with self._arrived:
            self._events.setdefault(job_id, received)
            self._arrived.notify_all()

    def received(self) -> int:
        """How many jobs' events have come."""
        with self._arrived:
            return len(self._events)

    def wait(self, job_id: str, deadline: float) -> Received | None:
        """The job's event, or None if it had not come by `deadline` (time.monotonic())."""
        with self._arrived:
            self._arrived.wait_for(
                lambda: job_id in self._events or time.monotonic() >= deadline,
                timeout=max(0.0, deadline - time.monotonic()),
            )
            return self._events.get(job_id)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
