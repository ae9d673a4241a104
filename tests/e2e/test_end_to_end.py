"""A user's task module, ten thousand items, one signed webhook, every result in input order."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.harness import Launcher, Receiver, Server, the_one_webhook, verified
from tests.waiting import wait_until

TOTAL = 10_000


def readings() -> list[dict[str, Any]]:
    return [{"sensor": f"s{i % 7}", "value": i} for i in range(TOTAL)]


def expected(index: int) -> dict[str, Any]:
    return {
        "index": index,
        "status": "succeeded",
        "output": {"label": f"s{index % 7}:{index}", "square": index * index},
    }


def pages(server: Server, job_id: str, limit: int) -> list[dict[str, Any]]:
    """Every outcome, a page of `limit` at a time, following `next_cursor`."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        response = server.client.get(f"/jobs/{job_id}/results", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) == min(limit, TOTAL - len(items))
        items.extend(page["items"])
        if page["next_cursor"] is None:
            return items
        params["cursor"] = page["next_cursor"]


def test_ten_thousand_items_of_a_user_task_come_back_in_order_with_one_signed_webhook(
    fanout: Launcher, receiver: Receiver
) -> None:
    server = fanout.serve()
    tasks = {t["name"]: t for t in server.client.get("/tasks").json()["items"]}
    assert tasks["summarize"]["input_schema"]["title"] == "Reading"

    job = server.submit(
        {"task": "summarize", "items": readings(), "webhook": {"url": receiver.url}}
    )
    secret = job["webhook"]["secret"]
    assert secret.startswith("whsec_")
    assert job["counts"]["total"] == TOTAL

    payload = the_one_webhook(server, receiver, job["id"], secret, timeout=90)
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == job["id"]
    assert payload["data"]["status"] == "succeeded"
    assert payload["data"]["counts"] == {
        "total": TOTAL,
        "succeeded": TOTAL,
        "failed": 0,
        "pending": 0,
        "running": 0,
        "cancelled": 0,
    }
    final = server.job(job["id"])
    assert final["counts"] == payload["data"]["counts"]
    assert "secret" not in final["webhook"]

    want = [expected(i) for i in range(TOTAL)]
    assert pages(server, job["id"], limit=777) == want
    assert server.results(job["id"]) == want
    jsonl = server.client.get(f"/jobs/{job['id']}/results", params={"format": "jsonl"})
    assert [json.loads(line) for line in jsonl.text.splitlines()] == want


def test_a_refused_webhook_is_retried_with_the_same_id_until_accepted(
    fanout: Launcher, receiver: Receiver
) -> None:
    server = fanout.serve()
    receiver.answers = [503]
    job = server.submit(
        {"task": "summarize", "items": readings()[:10], "webhook": {"url": receiver.url}}
    )

    refused, accepted = receiver.wait_for(2, timeout=30)
    secret = job["webhook"]["secret"]
    assert verified(refused, secret) == verified(accepted, secret)
    assert refused.headers["webhook-id"] == accepted.headers["webhook-id"]
    assert verified(accepted, secret)["data"]["counts"]["succeeded"] == 10

    def delivered() -> dict[str, Any] | None:
        webhook: dict[str, Any] = server.job(job["id"])["webhook"]
        return webhook if webhook["status"] == "delivered" else None

    webhook = wait_until(delivered, 30, "the second attempt to be recorded")
    assert [a["status_code"] for a in webhook["attempts"]] == [503, 204]
    assert webhook["event_id"] == accepted.headers["webhook-id"]
