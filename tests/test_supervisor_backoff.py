"""The supervisor's backoff after quick exits is per slot: a slot waiting out its backoff never
delays the respawn of another. Real worker processes, killed with SIGKILL; only the clock that
decides what counts as a quick exit and when a backoff ends is the test's, so a backoff can last
"ten minutes" without the test waiting for it."""

from __future__ import annotations

import os
import signal

from fanout.service import Fanout
from fanout.settings import Settings
from fanout.workers.local import Supervisor
from tests.waiting import wait_until

DEADLINE = 30.0  # seconds; far below the 600 s backoff the first slot waits out


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_slot_backing_off_does_not_hold_up_another_slot_s_respawn(
    settings: Settings, service: Fanout
) -> None:
    clock = Clock()
    supervisor = Supervisor(
        settings, service, 2, quick_exit=10.0, backoff=lambda _: 600.0, clock=clock
    )
    supervisor.start()
    try:
        first, second = supervisor.slots
        assert first.process.pid is not None and second.process.pid is not None
        os.kill(first.process.pid, signal.SIGKILL)  # at 0 s of its 10: a quick exit
        wait_until(lambda: supervisor.slots[0].respawn_at == 600.0, DEADLINE, "the backoff")
        clock.now = 60.0  # the second worker has lived past the quick-exit time
        os.kill(second.process.pid, signal.SIGKILL)

        wait_until(
            lambda: supervisor.slots[1] is not second and supervisor.slots[1].process.is_alive(),
            DEADLINE,
            "the second slot's respawn while the first backs off",
        )
        assert supervisor.slots[0] is first and not first.process.is_alive()
        assert supervisor.live() == 1 and supervisor.restarts == 1

        clock.now = 600.0
        wait_until(lambda: supervisor.live() == 2, DEADLINE, "the first slot's respawn")
        assert supervisor.restarts == 2
    finally:
        supervisor.stop()
    assert supervisor.live() == 0
