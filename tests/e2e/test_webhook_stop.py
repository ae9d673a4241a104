"""A webhook attempt cut off by a stop is sent again at once after the restart, not once its
claim's lease ends. The receiver holds the first request unanswered; `fanout serve` gets SIGTERM
mid-attempt and hands the attempt's claim back as it stops; the next start sends the event again
(same `webhook-id`, same signature) and records exactly one delivery. The webhook timeout is long
enough that the claim's lease (3 x timeout + 5 s) is minutes: the deadlines below are far
shorter, so the test fails if the restart waits for the lease."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.harness import QUIET, Launcher, Received, Receiver, verified
from tests.waiting import wait_until

WEBHOOK_TIMEOUT = 100  # seconds: a claim's lease is 3 x 100 + 5 = 305 s
HOLD = 120.0  # seconds the receiver holds the first request at most
DEADLINE = 60.0  # for the resent attempt: far below the 305 s lease


class HoldingReceiver(Receiver):
    """Holds the first request without answering until `let_go` (or HOLD); answers the rest
    204 at once."""

    def __init__(self) -> None:
        super().__init__()
        self.let_go = threading.Event()

    def record(self, received: Received) -> int:
        first = not self.deliveries()
        status = super().record(received)
        if first:
            self.let_go.wait(HOLD)
        return status


@pytest.fixture
def holding() -> Iterator[HoldingReceiver]:
    receiver = HoldingReceiver()
    receiver.thread.start()
    yield receiver
    receiver.let_go.set()
    receiver.server.shutdown()
    receiver.server.server_close()
    receiver.thread.join()


def test_an_attempt_cut_off_by_sigterm_is_sent_again_at_once_after_a_restart(
    fanout: Launcher, holding: HoldingReceiver
) -> None:
    env = {"FANOUT_WEBHOOK_TIMEOUT": str(WEBHOOK_TIMEOUT)}
    server = fanout.serve(workers=1, env=env)
    job = server.submit({"task": "echo", "items": [1, 2, 3], "webhook": {"url": holding.url}})
    [held] = holding.wait_for(1, 30)  # the first attempt is under way, unanswered

    assert server.stop(signal.SIGTERM) == 0
    server = fanout.serve(workers=1, data_dir=server.data_dir, env=env)

    first, again = holding.wait_for(2, DEADLINE)

    def delivered() -> dict[str, Any] | None:
        state = server.job(job["id"])
        return state if state["webhook"]["status"] == "delivered" else None

    state = wait_until(delivered, DEADLINE, "the webhook to be recorded as delivered")
    assert first is held
    # The same event, signed as before: a receiver deduplicating by webhook-id sees one.
    assert again.headers["webhook-id"] == held.headers["webhook-id"] == state["webhook"]["event_id"]
    assert verified(again, job["webhook"]["secret"]) == verified(held, job["webhook"]["secret"])
    # The cut-off attempt was never recorded: one attempt, the delivery.
    assert [a["status_code"] for a in state["webhook"]["attempts"]] == [204]
    deadline = time.monotonic() + QUIET  # an absence needs a bounded wait: none comes after
    while time.monotonic() < deadline:
        assert len(holding.deliveries()) == 2, "a third request after the delivery"
        time.sleep(0.05)
