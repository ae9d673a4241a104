"""What `fanout serve` logs: with `--log-format json` every line is one JSON object, jobs write a
line when submitted and one when they end (counts, duration), and `--access-log` adds requests."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.harness import Launcher, Server
from tests.waiting import wait_until


def records(server: Server) -> list[dict[str, Any]]:
    lines = server.process.output().splitlines()
    parsed = [json.loads(line) for line in lines if line.strip()]
    assert all(isinstance(record, dict) for record in parsed)
    return parsed


def event(server: Server, name: str, job_id: str) -> dict[str, Any] | None:
    found = [r for r in records(server) if r.get("event") == name and r.get("job_id") == job_id]
    return found[0] if found else None


def test_json_logs_are_one_object_a_line_with_a_line_per_job_submitted_and_finished(
    fanout: Launcher,
) -> None:
    options = ("--log-format", "json", "--access-log")
    server = fanout.serve(workers=1, env={"FANOUT_API_KEYS": "k1:acme"}, options=options)
    server.client.headers["authorization"] = "Bearer k1"

    job = server.submit({"task": "echo", "items": [1, 2, 3]})
    server.wait_for_job(job["id"], 30)
    finished = wait_until(lambda: event(server, "job.finished", job["id"]), 10, "job.finished")
    submitted = event(server, "job.submitted", job["id"])
    server.stop()

    assert submitted is not None
    assert (submitted["tenant"], submitted["task"], submitted["total"]) == ("acme", "echo", 3)
    assert (finished["tenant"], finished["status"]) == ("acme", "succeeded")
    assert finished["counts"] == {"total": 3, "succeeded": 3, "failed": 0, "cancelled": 0}
    assert finished["duration_s"] >= 0
    assert {"time", "level", "logger", "message"} <= set(finished)
    requests = [r for r in records(server) if r.get("event") == "http.request"]
    posts = [r for r in requests if (r["method"], r["path"]) == ("POST", "/jobs")]
    assert [post["status"] for post in posts] == [202]
    assert all("color_message" not in r for r in records(server))


def test_text_logs_say_when_a_job_is_submitted_and_how_it_ended(fanout: Launcher) -> None:
    server = fanout.serve(workers=1)

    job = server.submit({"task": "echo", "items": [1, 2]})
    server.wait_for_job(job["id"], 30)

    def finished_line() -> str | None:
        lines = [line for line in server.process.output().splitlines() if job["id"] in line]
        return next((line for line in lines if "succeeded" in line), None)

    line = wait_until(finished_line, 10, "the job's finished line")
    assert f"job {job['id']} succeeded: 2 of 2 items succeeded, 0 failed, 0 cancelled" in line
    assert f"job {job['id']} submitted: task echo, 2 items" in server.process.output()
    assert "POST /jobs" not in server.process.output(), "no access log unless asked for"
