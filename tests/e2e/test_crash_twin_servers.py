"""Two `fanout serve` on one data directory: each runs a notifier, and each attempt is claimed
before it is made, so no webhook goes out twice."""

from __future__ import annotations

import time

from tests.e2e.harness import QUIET, Launcher, Receiver, Server
from tests.waiting import wait_until

JOBS = 30


def delivered(server: Server, job_ids: list[str]) -> bool:
    return all(server.job(job_id)["webhook"]["status"] == "delivered" for job_id in job_ids)


def test_two_servers_on_one_data_dir_deliver_each_webhook_exactly_once(
    fanout: Launcher, receiver: Receiver
) -> None:
    first = fanout.serve(workers=1)
    second = fanout.serve(workers=1, data_dir=first.data_dir)
    jobs = [
        (first if i % 2 else second).submit(
            {"task": "echo", "items": [i], "webhook": {"url": receiver.url}}
        )
        for i in range(JOBS)
    ]
    job_ids = [job["id"] for job in jobs]

    wait_until(lambda: delivered(first, job_ids), 60, "every webhook to be delivered", every=0.1)
    deadline = time.monotonic() + QUIET  # a duplicate would arrive within the notifiers' poll
    while time.monotonic() < deadline:
        time.sleep(0.05)

    ids = [received.headers["webhook-id"] for received in receiver.deliveries()]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert duplicates == [], f"{len(ids) - len(set(ids))} webhooks went out twice"
    assert sorted(ids) == sorted(f"evt_{job_id}" for job_id in job_ids)
    for job_id in job_ids:
        assert [a["status_code"] for a in first.job(job_id)["webhook"]["attempts"]] == [204]
