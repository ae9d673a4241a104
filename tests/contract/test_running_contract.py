"""Running a delivered chunk through `fanout.service.Fanout`, written once for every backend: the
job shows as started from when its first chunk starts, at that time; its usage counts the
requests its chunks made; and the fan-in's rounds say how many change records they read.

Written to kill mutants `python -m bench mutation` found surviving in `Running._run` (the time
it starts a chunk at: on SQLite the queue stamps it as it delivers, on AWS `start_chunk` does)
and, with `--aws`, in `Running.aggregate_changes` (the count a round returns, which the stream
poller logs).
"""

from __future__ import annotations

import time

from fanout import task
from fanout.backends.aws.streams import DynamoStreamReader
from fanout.models import Job, JobStatus, TenantId
from fanout.service import Backend, Fanout, JobRequest
from fanout.settings import Settings
from tests.waiting import wait_until

TENANT = TenantId("tenant-a")


@task(name="test_running_contract_same")
def same(item: int) -> int:
    return item


def test_a_job_is_started_at_the_time_its_first_chunk_starts(
    backend: Backend, settings: Settings
) -> None:
    service = Fanout(backend, settings)
    job, _ = service.submit(
        TENANT, JobRequest(task="test_running_contract_same", items=[1, 2], params={}, chunk_size=1)
    )
    assert service.get(TENANT, job.id).started_at is None
    before = time.time()

    [delivery] = service.receive("worker")
    service.process(delivery)

    after = time.time()
    got = service.get(TENANT, job.id)
    assert got.status is JobStatus.RUNNING
    assert got.started_at is not None and before <= got.started_at <= after


def test_a_job_s_usage_counts_the_requests_its_chunks_made_where_they_are_billed(
    backend: Backend, settings: Settings
) -> None:
    """On AWS a chunk's run reads the job and writes its start and result: its read units show
    in the job's usage once its result is counted (submitting reads nothing). SQLite bills no
    requests: its usage has none."""
    service = Fanout(backend, settings)
    request = JobRequest(task="test_running_contract_same", items=[1, 2], params={}, chunk_size=1)
    job, _ = service.submit(TENANT, request)
    submitted = dict(service.get(TENANT, job.id).usage.requests)
    assert "dynamodb read units" not in submitted

    [delivery] = service.receive("worker")
    service.process(delivery)

    def counted() -> Job | None:
        service.aggregate_changes()  # the stream's fan-in (AWS); nothing to do on SQLite
        got = service.get(TENANT, job.id)
        return got if got.succeeded == 1 else None

    usage = wait_until(counted, 30, "the chunk's result to be counted").usage
    if not service.backend.metered:
        assert usage.requests == submitted == {}
        return
    assert usage.requests["dynamodb read units"] > 0
    assert usage.requests["dynamodb write units"] > submitted["dynamodb write units"]


def stream_records(reader: DynamoStreamReader) -> int:
    """Every record the table's stream holds, read from each shard's start with the stream's
    own client (not the reader's positions)."""
    client, arn = reader.client, reader.stream_arn
    shards = client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    total = 0
    for shard in shards:
        iterator = client.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for _ in range(1000):
            response = client.get_records(ShardIterator=iterator, Limit=1000)
            total += len(response["Records"])
            iterator = response.get("NextShardIterator")
            if not response["Records"] or iterator is None:
                break
    return total


def test_a_fan_in_round_returns_how_many_change_records_it_read(
    backend: Backend, settings: Settings
) -> None:
    """The stream poller's rounds (AWS) read every record of the stream once, each round saying
    how many it read, until a round finds none; with no change feed (SQLite) a round reads
    nothing."""
    service = Fanout(backend, settings)
    request = JobRequest(task="test_running_contract_same", items=[1, 2], params={}, chunk_size=1)
    job, _ = service.submit(TENANT, request)
    for _ in range(2):
        for delivery in service.receive("worker"):
            service.process(delivery)

    rounds = []
    for _ in range(20):
        rounds.append(service.aggregate_changes())
        if rounds[-1] == 0:
            break

    reader = service.backend.changes
    if reader is None:
        assert rounds == [0]
        return
    assert rounds[-1] == 0 and all(read > 0 for read in rounds[:-1]), rounds
    assert isinstance(reader, DynamoStreamReader)
    assert sum(rounds) == stream_records(reader)
    assert service.get(TENANT, job.id).succeeded == 2
