"""`fanout serve`'s background process (the webhook notifier, the reconciler and the sweeps) runs
apart from the API, under a supervisor: killed, it is replaced and webhooks go on; the server
killed, it ends by itself (`test_restart.py`'s SIGKILL case fails on any process left over)."""

from __future__ import annotations

import signal

import psutil

from tests.e2e.harness import Launcher, Receiver, the_one_webhook
from tests.waiting import wait_until

DEADLINE = 30.0


def test_a_killed_background_process_is_replaced_and_the_next_webhook_arrives(
    fanout: Launcher, receiver: Receiver
) -> None:
    server = fanout.serve(workers=1)
    (first,) = wait_until(server.process.background, DEADLINE, "the background process")
    first.send_signal(signal.SIGKILL)

    def replaced() -> psutil.Process | None:
        found = server.process.background()
        return found[0] if len(found) == 1 and found[0].pid != first.pid else None

    second = wait_until(replaced, DEADLINE, "another background process")
    job = server.submit({"task": "echo", "items": [1, 2, 3], "webhook": {"url": receiver.url}})
    payload = the_one_webhook(server, receiver, job["id"], job["webhook"]["secret"])
    assert payload["type"] == "job.succeeded"
    assert second.is_running()
    assert f"background process {first.pid} exited" in server.process.output()


def test_the_background_process_stops_with_the_server(fanout: Launcher) -> None:
    server = fanout.serve(workers=1)
    (background,) = wait_until(server.process.background, DEADLINE, "the background process")
    assert server.stop(signal.SIGTERM) == 0
    assert not background.is_running() or background.status() == psutil.STATUS_ZOMBIE
