"""Hostile webhook receivers against the real `fanout serve`: a 1 GiB answer, answers dripped a
byte at a time. All on 127.0.0.1; every receiver stops by itself (bytes and seconds bounded)."""

from __future__ import annotations

import contextlib
from typing import Any

from bench.hostile import Dripper, Hostile, HugeBody, Seen, peak_rss_mb
from fanout.workers.notifier import PER_DESTINATION
from tests.e2e.harness import Launcher, Receiver, Server
from tests.waiting import wait_until

MB = 1024 * 1024


def webhook_job(server: Server, url: str) -> dict[str, Any]:
    return server.submit({"task": "echo", "items": [1], "webhook": {"url": url}})


def attempts(server: Server, job_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = server.job(job_id)["webhook"]["attempts"]
    return found


def test_a_receiver_answering_a_gibibyte_leaves_the_server_under_300_mb(
    fanout: Launcher,
) -> None:
    server = fanout.serve(workers=1)
    with HugeBody().running() as huge:
        job = webhook_job(server, huge.url)
        first = wait_until(lambda: attempts(server, job["id"]), 120.0, "the webhook attempt")
        connections = huge.connections()

    assert first[0]["status_code"] == 200
    assert server.job(job["id"])["webhook"]["status"] == "delivered"
    assert peak_rss_mb(server.process.popen.pid) < 300
    assert all(seen.sent < 64 * MB for seen in connections), [s.sent for s in connections]


def done(hostile: Hostile) -> Seen | None:
    connections = hostile.connections()
    return connections[0] if connections and connections[0].done else None


def test_a_dripping_receiver_is_cut_off_at_the_webhook_timeout(fanout: Launcher) -> None:
    server = fanout.serve(workers=1, env={"FANOUT_WEBHOOK_TIMEOUT": "2"})
    with Dripper(every=0.5, lasting=30.0).running() as dripper:
        job = webhook_job(server, dripper.url)
        first = wait_until(lambda: attempts(server, job["id"]), 60.0, "the webhook attempt")
        seen = wait_until(lambda: done(dripper), 30.0, "the dripper to be done")

    assert first[0]["status_code"] is None
    # Cut at the configured 2 s, not at the default 10 s nor at a gap between two drips.
    assert first[0]["error"] == "TimeoutError: no complete answer within 2 s"
    assert seen.hung_up, "the dripper finished before the server hung up"
    assert server.job(job["id"])["webhook"]["status"] == "pending"  # retried later


def test_one_receiver_gets_its_destination_s_slots_at_once_and_the_rest_wait_for_one(
    fanout: Launcher,
) -> None:
    """A receiver that never answers holds at most its destination's slots (PER_DESTINATION,
    8): twice as many events for it go out that many at a time, the next ones only as the first
    are cut off at the timeout."""
    slots, timeout = PER_DESTINATION, 6.0
    server = fanout.serve(workers=1, env={"FANOUT_WEBHOOK_TIMEOUT": str(timeout)})
    with Dripper(lasting=60.0).running() as dripper:
        jobs = [webhook_job(server, dripper.url)["id"] for _ in range(2 * slots)]

        def ended() -> bool:
            return all(server.job(job)["status"] == "succeeded" for job in jobs)

        wait_until(ended, 30.0, "the jobs to end")
        wait_until(lambda: len(dripper.connections()) >= 2 * slots, 60.0, "every attempt")
        opened = sorted(seen.opened for seen in dripper.connections())

    # An attempt's one deadline covers its connect, so a slot frees no sooner than `timeout`
    # after its attempt began, a moment before the connection opened: no window shorter than
    # that sees one connection more than the slots open.
    window = timeout - 1.5  # room for a busy machine's lag between accept and `Seen`
    later = zip(opened, opened[slots:], strict=False)
    assert all(then - first > window for first, then in later)
    assert opened[slots - 1] - opened[0] < window  # the first went out at once, not one by one


def test_a_healthy_webhook_is_not_held_up_by_eight_dripping_receivers(
    fanout: Launcher, receiver: Receiver
) -> None:
    server = fanout.serve(workers=1, env={"FANOUT_WEBHOOK_TIMEOUT": "30"})
    with contextlib.ExitStack() as stack:
        drippers = [stack.enter_context(Dripper(lasting=40.0).running()) for _ in range(8)]
        for dripper in drippers:
            webhook_job(server, dripper.url)

        def dripping() -> list[Seen] | None:
            seen = [s for d in drippers for s in d.connections() if s.sent and not s.done]
            return seen if len(seen) == 8 else None

        wait_until(dripping, 30.0, "all eight drippers to be dripping")
        healthy = webhook_job(server, receiver.url)
        receiver.wait_for(1, 60.0)
        still = dripping()

    assert still is not None, "the healthy webhook went out only after a dripper was done"
    assert receiver.deliveries()[0].headers["webhook-id"] == f"evt_{healthy['id']}"
