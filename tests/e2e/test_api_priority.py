"""`fanout serve`'s API process gives way to its workers and its background process when they
compete for the CPU: it runs `FANOUT_API_NICE` nice steps below them (3 by default), and they
keep the priority the server was started with, restarted ones too."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from tests.e2e.harness import Launcher
from tests.waiting import wait_until

DEADLINE = 30.0


def niceness(pid: int) -> int:
    """The nice value of the process's main thread (Linux keeps one per thread)."""
    return int(psutil.Process(pid).nice())


@pytest.mark.parametrize(("setting", "steps"), [(None, 3), ("0", 0), ("7", 7)])
def test_the_api_runs_below_its_workers_and_its_background_process(
    fanout: Launcher, setting: str | None, steps: int
) -> None:
    own = os.nice(0)
    env = {} if setting is None else {"FANOUT_API_NICE": setting}
    server = fanout.serve(workers=1, env=env)
    (worker,) = wait_until(server.process.workers, DEADLINE, "the worker")
    (background,) = wait_until(server.process.background, DEADLINE, "the background process")
    server.wait_for_job(server.submit({"task": "echo", "items": [1, 2]})["id"], DEADLINE)

    assert niceness(server.process.popen.pid) == own + steps
    assert niceness(worker.pid) == own
    assert niceness(background.pid) == own


def test_a_replaced_worker_keeps_the_workers_priority(fanout: Launcher) -> None:
    server = fanout.serve(workers=1)
    (first,) = wait_until(server.process.workers, DEADLINE, "the worker")
    first.send_signal(signal.SIGKILL)

    def replaced() -> psutil.Process | None:
        found = server.process.workers()
        return found[0] if len(found) == 1 and found[0].pid != first.pid else None

    second = wait_until(replaced, DEADLINE, "another worker")

    assert niceness(second.pid) == os.nice(0)
    assert niceness(server.process.popen.pid) == os.nice(0) + 3
