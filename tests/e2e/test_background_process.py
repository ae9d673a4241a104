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


def test_when_the_forkserver_dies_its_processes_are_watched_by_id_not_started_twice(
    fanout: Launcher, receiver: Receiver
) -> None:
    """multiprocessing hears of a forked process's end from the forkserver that forked it:
    with the forkserver killed, it reports them all ended while they run on. The supervisor
    then goes by their ids and names: it starts no second worker beside the one still running,
    replaces the background process once that is killed, and stops them all with the server."""
    server = fanout.serve(workers=1)
    (worker,) = wait_until(server.process.workers, DEADLINE, "the worker")
    (background,) = wait_until(server.process.background, DEADLINE, "the background process")
    (forkserver,) = [
        p
        for p in psutil.Process(server.process.popen.pid).children()
        if "multiprocessing.forkserver" in " ".join(p.cmdline())
    ]
    forkserver.send_signal(signal.SIGKILL)
    background.send_signal(signal.SIGKILL)

    def replaced() -> psutil.Process | None:
        found = server.process.background()
        return found[0] if len(found) == 1 and found[0].pid != background.pid else None

    wait_until(replaced, DEADLINE, "another background process, from another forkserver")
    job = server.submit({"task": "echo", "items": [1, 2, 3], "webhook": {"url": receiver.url}})
    payload = the_one_webhook(server, receiver, job["id"], job["webhook"]["secret"])
    assert payload["type"] == "job.succeeded"  # run by the first worker, still running
    assert worker.is_running()
    assert server.process.workers() == []  # its forkserver gone, it is nobody's child now
    assert server.stop(signal.SIGTERM) == 0
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
