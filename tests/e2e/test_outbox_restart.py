"""The README's promise on webhooks: deliveries come from a durable outbox, so they survive a
restart. A job ends while its receiver is down (answering 503 with `Retry-After`, or not even
listening); `fanout serve` is stopped (SIGKILL, SIGTERM) while the delivery is still owed; the
receiver comes up and the server starts again; the webhook arrives, once."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.harness import QUIET, Launcher, Received, verified
from tests.waiting import wait_until

RETRY_AFTER = 2  # seconds a 503 asks for: no attempt is under way when the server is stopped


class DownReceiver:
    """A webhook receiver on 127.0.0.1 that is down until `up()`: with `refusing`, its port is
    bound but not listening (connections are refused); otherwise it answers 503 with
    `Retry-After`. Up, it answers 204. Records each POST with the status it answered."""

    def __init__(self, refusing: bool) -> None:
        self.lock = threading.Lock()
        self.answered: list[tuple[Received, int]] = []
        self.down = True
        self.refusing = refusing
        self.server = ThreadingHTTPServer(
            ("127.0.0.1", 0), self._handler(), bind_and_activate=False
        )
        self.server.daemon_threads = True
        self.server.server_bind()  # the port is held from now on, listening or not
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver")
        if not refusing:
            self._listen()

    def _listen(self) -> None:
        self.server.server_activate()
        self.thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {key.lower(): value for key, value in self.headers.items()}
                status = receiver.record(Received(self.path, headers, body))
                self.send_response(status)
                if status == 503:
                    self.send_header("retry-after", str(RETRY_AFTER))
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reports what was received."""

        return Handler

    def record(self, received: Received) -> int:
        with self.lock:
            status = 503 if self.down else 204
            self.answered.append((received, status))
            return status

    def posts(self) -> list[tuple[Received, int]]:
        with self.lock:
            return list(self.answered)

    def up(self) -> None:
        with self.lock:
            self.down = False
        if self.refusing:
            self._listen()

    def close(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[list[DownReceiver]]:
    made: list[DownReceiver] = []
    yield made
    for receiver in made:
        receiver.close()


@pytest.mark.parametrize(
    ("signum", "refusing"),
    [(signal.SIGKILL, False), (signal.SIGTERM, True)],
    ids=["SIGKILL-while-the-receiver-answers-503", "SIGTERM-while-the-receiver-refuses"],
)
def test_a_webhook_owed_when_the_server_stops_is_delivered_once_after_a_restart(
    fanout: Launcher, receivers: list[DownReceiver], signum: signal.Signals, refusing: bool
) -> None:
    receiver = DownReceiver(refusing)
    receivers.append(receiver)
    # Attempts enough that the event is never given up on while the receiver is down.
    env = {"FANOUT_WEBHOOK_TIMEOUT": "2", "FANOUT_WEBHOOK_MAX_ATTEMPTS": "50"}
    server = fanout.serve(workers=1, env=env)
    job = server.submit({"task": "echo", "items": [1, 2, 3], "webhook": {"url": receiver.url}})

    def owed() -> dict[str, Any] | None:
        state = server.job(job["id"])
        return state if state["webhook"]["attempts"] else None

    before = wait_until(owed, 30, "a first failed delivery attempt")
    assert before["status"] == "succeeded"
    assert before["webhook"]["status"] == "pending"
    assert server.stop(signum) == (-signum if signum is signal.SIGKILL else 0)
    assert all(status == 503 for _, status in receiver.posts())

    receiver.up()
    server = fanout.serve(workers=1, data_dir=server.data_dir, env=env)

    def delivered() -> dict[str, Any] | None:
        state = server.job(job["id"])
        return state if state["webhook"]["status"] == "delivered" else None

    after = wait_until(delivered, 30, "the webhook to be delivered after the restart")
    deadline = time.monotonic() + QUIET  # an absence needs a bounded wait: none comes after
    while time.monotonic() < deadline:
        assert [status for _, status in receiver.posts()].count(204) == 1
        time.sleep(0.05)
    posts = receiver.posts()
    [(received, _)] = [(r, status) for r, status in posts if status == 204]
    assert posts[-1][1] == 204, "an attempt was made after the delivery"
    payload = verified(received, job["webhook"]["secret"])
    assert (payload["type"], payload["data"]["id"]) == ("job.succeeded", job["id"])
    assert {r.headers["webhook-id"] for r, _ in posts} == {after["webhook"]["event_id"]}
    attempts = [a["status_code"] for a in after["webhook"]["attempts"]]
    # Every attempt is on the job, the failed ones from before the stop included.
    assert attempts[-1] == 204 and 204 not in attempts[:-1]
    assert len(attempts) >= len(before["webhook"]["attempts"]) + 1
    if not refusing:
        assert attempts == [status for _, status in posts]
