"""`fanout.client` against the real `fanout serve`: both clients, their errors, webhooks."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from fanout.client import (
    AsyncClient,
    Client,
    Conflict,
    Invalid,
    InvalidSignature,
    JobPublic,
    NotFound,
    Unauthorized,
    verify_webhook,
)
from tests.e2e.harness import Launcher, Receiver

ITEMS = list(range(40))


def monotone(seen: list[JobPublic]) -> bool:
    done = [job.counts.succeeded + job.counts.failed for job in seen]
    return done == sorted(done)


def test_the_client_submits_waits_with_progress_and_streams_results_in_input_order(
    fanout: Launcher,
) -> None:
    server = fanout.serve()
    seen: list[JobPublic] = []
    with Client(server.url) as client:
        job = client.submit(
            "pause_then_triple", ITEMS, params={"pause": 0.01}, chunk_size=2, max_concurrency=2
        )
        # A worker may take the first chunk before the 202 is written: queued or running.
        assert job.status in ("queued", "running") and job.counts.total == len(ITEMS)
        done = client.wait(job.id, progress=seen.append, timeout=60)
        assert done.status == "succeeded"
        assert done.counts.succeeded == len(ITEMS)
        assert seen[-1] == done
        assert len(seen) >= 2 and monotone(seen)
        results = list(client.results(job.id))
        assert [(r.index, r.status, r.output) for r in results] == [
            (i, "succeeded", 3 * i) for i in ITEMS
        ]
        assert [j.id for j in client.list(limit=5).items] == [job.id]
        assert client.get(job.id) == done


def test_the_async_client_does_the_same_through_the_same_calls(fanout: Launcher) -> None:
    server = fanout.serve()

    async def scenario() -> None:
        seen: list[JobPublic] = []
        async with AsyncClient(server.url) as client:
            job = await client.submit("echo", ITEMS, chunk_size=4, max_concurrency=1)
            done = await client.wait(job.id, progress=seen.append, timeout=60)
            assert done.status == "succeeded" and monotone(seen)
            outputs = [r.output async for r in client.results(job.id)]
            assert outputs == ITEMS
            with pytest.raises(Conflict) as ended:
                await client.cancel(job.id)
            assert ended.value.status == 409
            with pytest.raises(NotFound):
                await client.get("0" * 28)

    anyio.run(scenario)


def test_errors_raise_with_the_problem_details_naming_the_field_or_item(
    fanout: Launcher,
) -> None:
    server = fanout.serve()
    with Client(server.url) as client:
        with pytest.raises(Invalid) as unknown:
            client.submit("no_such_task", [1])
        assert unknown.value.problem.detail == "Unknown task"
        assert unknown.value.errors[0]["field"] == "task"
        with pytest.raises(Invalid) as typed:
            client.submit("summarize", [{"sensor": "a", "value": 1}, {"sensor": "b"}])
        assert [e["index"] for e in typed.value.errors] == [1]
        with pytest.raises(NotFound) as missing:
            client.get("0" * 28)
        assert missing.value.problem.instance == f"/jobs/{'0' * 28}"
        job = client.submit("echo", [1, 2, 3])
        client.wait(job.id, timeout=30)
        with pytest.raises(Conflict):
            client.cancel(job.id)
        with pytest.raises(Conflict) as nothing:
            client.redrive(job.id)
        assert nothing.value.problem.title == "Nothing to redrive"
        assert client.list().items[0].id == job.id  # nothing half-created by the 422s


def test_the_api_key_comes_from_the_argument_or_the_environment(
    fanout: Launcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = fanout.serve(env={"FANOUT_API_KEYS": "key-a:tenant-a,key-b:tenant-b"})
    with Client(server.url) as anonymous, pytest.raises(Unauthorized):
        anonymous.list()
    with Client(server.url, api_key="key-a") as a:
        job = a.submit("echo", [1])
    monkeypatch.setenv("FANOUT_URL", server.url)
    monkeypatch.setenv("FANOUT_API_KEY", "key-b")
    with Client() as b:
        with pytest.raises(NotFound):
            b.get(job.id)  # another tenant's job
        with pytest.raises(NotFound):
            b.wait(job.id, timeout=10)
        assert b.list().items == []


def test_verify_webhook_accepts_the_servers_signed_event_and_refuses_a_tampered_one(
    fanout: Launcher, receiver: Receiver
) -> None:
    server = fanout.serve()
    with Client(server.url) as client:
        job = client.submit("echo", [1, 2], webhook=receiver.url)
        assert job.webhook is not None and job.webhook.secret is not None
        secret = job.webhook.secret
    delivered = receiver.wait_for(1, 30)[0]
    event = verify_webhook(delivered.body, delivered.headers, secret)
    assert (event.type, event.data.id, event.data.counts.succeeded) == ("job.succeeded", job.id, 2)
    with pytest.raises(InvalidSignature):
        verify_webhook(delivered.body.replace(b"succeeded", b"failed"), delivered.headers, secret)
    other = "whsec_" + "A" * 32
    with pytest.raises(InvalidSignature):
        verify_webhook(delivered.body, delivered.headers, other)


def test_redrive_through_the_client_runs_the_failed_items_again(
    fanout: Launcher, tmp_path: Path
) -> None:
    server = fanout.serve()
    (tmp_path / "runs").touch()
    params = {"dir": str(tmp_path), "fail": [2]}
    with Client(server.url) as client:
        job = client.submit("fail_until_fixed", [1, 2, 3], params=params)
        assert client.wait(job.id, timeout=30).status == "failed"
        (tmp_path / "fixed").touch()
        again = client.redrive(job.id)
        assert again.redrive_count == 1
        done = client.wait(job.id, timeout=30)
        assert (done.status, done.counts.succeeded, done.redrive_count) == ("succeeded", 3, 1)


def test_items_files_of_each_format_are_streamed_as_they_are_read(
    fanout: Launcher, tmp_path: Path
) -> None:
    server = fanout.serve()
    many = list(range(2000))
    (tmp_path / "items.jsonl").write_text("".join(f"{i}\n" for i in many))
    (tmp_path / "items.json").write_text(json.dumps(many))
    (tmp_path / "items.csv").write_text("n\n" + "".join(f"{i}\n" for i in many))
    with Client(server.url) as client:
        lines = client.submit(
            "echo", items_file=tmp_path / "items.jsonl", params={"a": [1]}, chunk_size=500
        )
        assert (lines.counts.total, lines.params, lines.chunk_size) == (2000, {"a": [1]}, 500)
        assert client.wait(lines.id, timeout=60).status == "succeeded"
        assert [r.output for r in client.results(lines.id)] == many
        array = client.submit("echo", items_file=tmp_path / "items.json", max_attempts=2)
        assert (array.counts.total, array.max_attempts) == (2000, 2)
        rows = client.submit("echo", items_file=tmp_path / "items.csv")
        assert client.wait(rows.id, timeout=60).counts.succeeded == 2000
        assert next(client.results(rows.id)).output == {"n": "0"}
        with pytest.raises(Invalid) as unknown:
            client.submit("no_such_task", items_file=tmp_path / "items.jsonl")
        assert unknown.value.errors[0]["field"] == "task"
