"""Backpressure against the real `fanout serve`: many clients posting at once get 429s with
Retry-After once the unstarted chunks reach their bound, and every job that was accepted
finishes. Loopback only; the load is bounded in count."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.e2e.harness import TERMINAL, Launcher

CLIENTS = 8
POSTS_EACH = 15
JOB = {"task": "echo", "items": [1, 2], "chunk_size": 1}


def test_concurrent_clients_are_pushed_back_and_every_accepted_job_finishes(
    fanout: Launcher,
) -> None:
    # No workers while the clients post, so the backlog only grows (whatever the machine's
    # speed); a `fanout worker` on the same data then runs what was accepted.
    bound = {"FANOUT_MAX_UNSTARTED_CHUNKS": "10"}
    server = fanout.serve(workers=0, env=bound)

    def post_all(_: int) -> list[httpx.Response]:
        # A connection per request: on a loaded machine a kept-alive connection can reach the
        # server's idle timeout just as the next request goes out (a reset, not the server's
        # answer).
        no_reuse = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=server.url, timeout=30.0, limits=no_reuse) as client:
            return [client.post("/jobs", json=JOB) for _ in range(POSTS_EACH)]

    with ThreadPoolExecutor(CLIENTS) as pool:
        responses = [r for batch in pool.map(post_all, range(CLIENTS)) for r in batch]

    accepted = [r.json()["id"] for r in responses if r.status_code == 202]
    refused = [r for r in responses if r.status_code == 429]
    assert len(accepted) + len(refused) == CLIENTS * POSTS_EACH
    assert refused, "no request was pushed back"
    assert all(r.headers["retry-after"].isdigit() for r in refused)
    fanout.worker(server.data_dir, workers=1, env=bound)
    for job_id in accepted:
        assert server.wait_for_job(job_id, 120.0)["status"] in TERMINAL
