"""The AWS pipeline on a laptop: `fanout aws bootstrap` then `fanout serve --backend aws`, both
real processes, against the moto server, exactly as the embedded default runs."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from tests.aws import moto
from tests.contract.support import BackendUnavailable, unavailable
from tests.e2e.harness import REPO, Launcher, Receiver, the_one_webhook
from tests.waiting import wait_until

TOTAL = 30


def aws_environment(fanout: Launcher, table: str) -> dict[str, str]:
    """The environment of a process on the moto server: endpoint, throwaway credentials, and
    fresh names (bootstrap derives the queues' names from the table's)."""
    try:
        endpoint = moto.endpoint()
    except BackendUnavailable as error:
        unavailable("the aws backend", error)
    return fanout.env(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": moto.REGION,
            "FANOUT_TABLE": table,
            "FANOUT_BUCKET": table,
        }
    )


def bootstrap(environment: dict[str, str]) -> dict[str, str]:
    """`fanout aws bootstrap` as a process; the settings it prints, by name."""
    bootstrapped = subprocess.run(
        [sys.executable, "-m", "fanout", "aws", "bootstrap"],
        env=environment,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(line.split("=", 1) for line in bootstrapped.stdout.splitlines())


def test_serve_on_the_aws_backend_runs_a_job_to_one_signed_webhook_against_the_moto_server(
    fanout: Launcher, receiver: Receiver
) -> None:
    environment = aws_environment(fanout, f"serve-{os.getpid()}")
    settings = bootstrap(environment)
    assert set(settings) >= {"FANOUT_TABLE", "FANOUT_CHUNK_QUEUE_URL", "FANOUT_NOTIFY_QUEUE_URL"}

    server = fanout.serve(workers=2, env={**environment, **settings, "FANOUT_BACKEND": "aws"})
    job = server.submit(
        {
            "task": "echo",
            "items": list(range(TOTAL)),
            "chunk_size": 3,
            "max_concurrency": 4,
            "webhook": {"url": receiver.url},
        }
    )

    payload = the_one_webhook(server, receiver, job["id"], job["webhook"]["secret"], timeout=60)
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["counts"]["succeeded"] == TOTAL
    assert (
        payload["data"]["output"] == f"s3://{settings['FANOUT_BUCKET']}/outputs/{job['id']}.jsonl"
    )
    assert [r["output"] for r in server.results(job["id"])] == list(range(TOTAL))
    assert server.stop() == 0


def test_serve_on_the_aws_backend_deletes_a_job_s_objects_when_its_job_item_is_removed(
    fanout: Launcher,
) -> None:
    """As JobObjectsFunction on AWS: the job item's removal (DynamoDB's TTL deletes it; moto
    runs no TTL, so a DeleteItem) makes the server's poller delete that job's objects, and only
    that job's."""
    environment = aws_environment(fanout, f"objects-{os.getpid()}")
    settings = bootstrap(environment)
    server = fanout.serve(workers=2, env={**environment, **settings, "FANOUT_BACKEND": "aws"})
    jobs = [server.submit({"task": "echo", "items": list(range(TOTAL))}) for _ in range(2)]
    for job in jobs:
        server.wait_for_job(job["id"], timeout=60)
    bucket, s3 = settings["FANOUT_BUCKET"], moto.client("s3")

    def keys() -> set[str]:
        return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}

    removed, other = (job["id"] for job in jobs)
    kept = {f"inputs/{other}.json", f"outputs/{other}.jsonl"}
    assert keys() == kept | {f"inputs/{removed}.json", f"outputs/{removed}.jsonl"}
    moto.client("dynamodb").delete_item(
        TableName=settings["FANOUT_TABLE"],
        Key={"pk": {"S": f"JOB#{removed}"}, "sk": {"S": "JOB"}},
    )

    wait_until(lambda: keys() == kept, 30, "the removed job's objects to go", every=0.2)
    assert server.client.get(f"/jobs/{other}").status_code == 200
    assert server.stop() == 0


def test_a_large_input_goes_through_a_presigned_s3_upload_on_the_aws_backend(
    fanout: Launcher,
) -> None:
    """The path past Lambda's 6 MB request limit: `POST /uploads` gives a presigned S3 PUT,
    the client puts the file straight into the bucket, `POST /jobs` names its `items_url`."""
    environment = aws_environment(fanout, f"uploads-{os.getpid()}")
    settings = bootstrap(environment)
    server = fanout.serve(workers=2, env={**environment, **settings, "FANOUT_BACKEND": "aws"})

    created = server.client.post("/uploads", json={"format": "csv"})
    assert created.status_code == 201, created.text
    target = created.json()
    bucket = settings["FANOUT_BUCKET"]
    assert target["items_url"].startswith(f"s3://{bucket}/uploads/")
    assert target["upload_url"].startswith(environment["AWS_ENDPOINT_URL"])
    rows = "".join(f"{i},item-{i}\n" for i in range(TOTAL))
    put = httpx.put(target["upload_url"], content=f"n,name\n{rows}", headers=target["headers"])
    assert put.status_code == 200, put.text

    job = server.submit({"task": "echo", "items_url": target["items_url"], "chunk_size": 7})
    done = server.wait_for_job(job["id"], timeout=60)
    assert done["counts"]["succeeded"] == TOTAL
    outputs = [r["output"] for r in server.results(job["id"])]
    assert outputs == [{"n": str(i), "name": f"item-{i}"} for i in range(TOTAL)]
    # Another job's objects in the same bucket are not uploads: refused, nothing stored.
    other = server.client.post(
        "/jobs", json={"task": "echo", "items_url": f"s3://{bucket}/outputs/{job['id']}.jsonl"}
    )
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "items_url"
    assert server.stop() == 0


def test_a_fanout_worker_on_the_aws_backend_runs_the_jobs_an_api_only_serve_accepts(
    fanout: Launcher, receiver: Receiver
) -> None:
    """`fanout worker --backend aws` beside a `fanout serve` with no workers (the API alone):
    the job's chunks are run by the worker process, from SQS, to one signed webhook. The
    worker is told the backend by its option alone, not FANOUT_BACKEND."""
    environment = aws_environment(fanout, f"worker-{os.getpid()}")
    settings = bootstrap(environment)
    server = fanout.serve(workers=0, env={**environment, **settings, "FANOUT_BACKEND": "aws"})
    job = server.submit(
        {
            "task": "echo",
            "items": list(range(TOTAL)),
            "chunk_size": 5,
            "webhook": {"url": receiver.url},
        }
    )
    assert server.job(job["id"])["counts"]["succeeded"] == 0

    worker = fanout.command(
        ["worker", "--backend", "aws", "--workers", "1"], {**environment, **settings}
    )

    payload = the_one_webhook(server, receiver, job["id"], job["webhook"]["secret"], timeout=60)
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["counts"]["succeeded"] == TOTAL
    assert [r["output"] for r in server.results(job["id"])] == list(range(TOTAL))
    assert f"DynamoDB table {environment['FANOUT_TABLE']}" in worker.output()
    assert worker.stop() == 0
