"""Retention on the real `fanout serve`: an ended job goes once FANOUT_RETENTION_DAYS has passed
(here under two seconds), after its webhook, while new jobs keep running."""

from __future__ import annotations

from tests.e2e.harness import Launcher, Receiver, verified
from tests.waiting import wait_until

SHORT = {"FANOUT_RETENTION_DAYS": "0.00002", "FANOUT_PURGE_INTERVAL": "0.2"}  # ~1.7 s


def test_an_ended_job_is_purged_after_its_retention_and_its_webhook(
    fanout: Launcher, receiver: Receiver
) -> None:
    server = fanout.serve(env=SHORT)
    hook = {"url": receiver.url}
    job = server.submit({"task": "echo", "items": list(range(100)), "webhook": hook})
    [first] = receiver.wait_for(1, timeout=60)
    assert verified(first, job["webhook"]["secret"])["data"]["status"] == "succeeded"

    def gone() -> bool:
        return server.client.get(f"/jobs/{job['id']}").status_code == 404

    wait_until(gone, timeout=30, what="the job to be purged", every=0.1)
    assert server.client.get(f"/jobs/{job['id']}/results").status_code == 404
    assert server.client.get("/jobs").json()["items"] == []

    later = server.submit({"task": "echo", "items": [1, 2, 3], "webhook": hook})
    second = verified(receiver.wait_for(2, timeout=60)[1], later["webhook"]["secret"])
    assert (second["data"]["id"], second["data"]["counts"]["succeeded"]) == (later["id"], 3)
