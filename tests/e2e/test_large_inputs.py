"""Large inputs against the real `fanout serve`: an NDJSON body sent in pieces as a client
uploads a file, an `items_url` file under the input directory, and a stream cut short by a bad
line, which stores nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator

from tests.e2e.harness import Launcher, Receiver, the_one_webhook

TOTAL = 50_000
NDJSON = {"content-type": "application/x-ndjson"}


def pieces(total: int, bad_line: int | None = None, size: int = 64 * 1024) -> Iterator[bytes]:
    """`{"sensor": ..., "value": i}` a line, in pieces of about `size` bytes that cut lines
    anywhere; line `bad_line` (1 is the first) is not JSON."""
    buffer = bytearray()
    for i in range(total):
        line = b"{not json" if bad_line == i + 1 else json.dumps(reading(i)).encode()
        buffer += line + b"\n"
        if len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    yield bytes(buffer)


def reading(i: int) -> dict[str, object]:
    return {"sensor": f"s{i % 7}", "value": i}


def test_an_ndjson_body_sent_in_pieces_runs_to_one_webhook_in_input_order(
    fanout: Launcher, receiver: Receiver
) -> None:
    server = fanout.serve()
    query = {"task": "summarize", "webhook_url": receiver.url}

    response = server.client.post("/jobs", params=query, content=pieces(TOTAL), headers=NDJSON)

    assert response.status_code == 202, response.text
    job = response.json()
    assert job["counts"]["total"] == TOTAL
    payload = the_one_webhook(server, receiver, job["id"], job["webhook"]["secret"], timeout=120)
    assert payload["data"]["status"] == "succeeded"
    outputs = [line["output"]["square"] for line in server.results(job["id"])]
    assert outputs == [i * i for i in range(TOTAL)]


def test_an_items_url_file_under_the_input_directory_becomes_the_job_s_items(
    fanout: Launcher,
) -> None:
    server = fanout.serve()
    inputs = server.data_dir / "inputs"
    inputs.mkdir(parents=True)
    (inputs / "readings.jsonl").write_bytes(b"".join(pieces(TOTAL)))

    job = server.submit({"task": "summarize", "items_url": "readings.jsonl"})

    assert job["counts"]["total"] == TOTAL
    assert server.wait_for_job(job["id"], timeout=120)["status"] == "succeeded"
    assert (
        server.page(job["id"], TOTAL - 1, 1)[0]["output"]["label"]
        == f"s{(TOTAL - 1) % 7}:{TOTAL - 1}"
    )


def test_a_bad_line_deep_in_a_stream_is_named_and_nothing_is_stored(fanout: Launcher) -> None:
    server = fanout.serve()

    response = server.client.post(
        "/jobs",
        params={"task": "summarize"},
        content=pieces(TOTAL, bad_line=TOTAL - 10),
        headers=NDJSON,
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert (error["field"], error["line"]) == ("items", TOTAL - 10)
    assert server.client.get("/jobs").json()["items"] == []
