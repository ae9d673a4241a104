"""One job through the AWS pipeline on the moto server: SQS worker, DynamoDB stream aggregator,
finalize, with the deliveries that at-least-once systems make (a chunk delivered twice, a stream
batch retried), and exact counts at the end."""

from __future__ import annotations

import threading

from pydantic_core import from_json

from fanout.models import ChangeBatch, JobStatus, TenantId
from fanout.service import Fanout, JobRequest
from fanout.workers import chunk_worker
from fanout.workers.aws_pollers import aggregator, drain_stream
from tests.waiting import wait_until

TENANT = TenantId("tenant-a")


def read_stream(service: Fanout) -> list[ChangeBatch]:
    assert service.backend.changes is not None
    return service.backend.changes.read(100)


def test_a_job_ends_with_exact_counts_despite_a_duplicated_delivery_and_a_retried_stream_batch(
    aws_service: Fanout,
) -> None:
    service = aws_service
    request = JobRequest(
        task="echo",
        items=list(range(40)),
        params={},
        webhook_url="http://127.0.0.1:9/hook",
        chunk_size=4,
        max_concurrency=3,
    )
    job, _ = service.submit(TENANT, request)
    queue = service.backend.queue
    duplicated = False
    retried = 0
    while not service.get(TENANT, job.id).status.terminal:
        deliveries = wait_until(lambda: queue.receive(10, 60), 15, "chunk messages")
        for delivery in deliveries:
            service.process(delivery)
            if not duplicated:  # SQS delivers the same chunk again
                queue.send([delivery.chunk])
                duplicated = True
        for batch in read_stream(service):
            first = service.aggregate(batch.records)
            again = service.aggregate(batch.records)  # Lambda retries the batch whole
            assert list(again) == []
            retried += len(first)
            assert service.backend.changes is not None
            service.backend.changes.commit(batch)

    done = service.get(TENANT, job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert (done.total, done.succeeded, done.failed, done.running, done.pending) == (
        40,
        40,
        0,
        0,
        0,
    )
    assert retried == 10  # each of the ten chunks counted once, the duplicate never
    outputs = [from_json(line)["output"] for line in service.result_lines(done, 0, None)]
    assert outputs == list(range(40))
    events = service.backend.outbox.due_events(done.finished_at or 0, 10)
    assert [e.id for e in events] == [f"evt_{job.id}"]
    assert not service.finalize(job.id)


def test_a_poison_chunk_is_split_until_its_item_fails_alone(aws_service: Fanout) -> None:
    service = aws_service
    job, _ = service.submit(
        TENANT, JobRequest(task="echo", items=list(range(4)), params={}, chunk_size=4)
    )
    queue = service.backend.queue

    def step() -> bool:
        for delivery in queue.receive(10, 0.2):
            if delivery.chunk.start > 0:
                service.process(delivery)
            # else item 0 kills its worker: the message is neither processed nor deleted
        for dead in queue.receive_dead(10, 60):
            service.process_dead_letter(dead)
        drain_stream(service)
        return service.get(TENANT, job.id).status.terminal

    wait_until(step, 90, "the job to end", every=0.05)
    done = service.get(TENANT, job.id)
    assert done.status is JobStatus.FAILED
    assert (done.succeeded, done.failed) == (3, 1)
    outcomes = [from_json(line) for line in service.result_lines(done, 0, None)]
    assert [o["status"] for o in outcomes] == ["failed", "succeeded", "succeeded", "succeeded"]
    assert outcomes[0]["error"]["type"] == "WorkerLost"


def test_the_pollers_run_a_job_to_its_end(aws_service: Fanout) -> None:
    service = aws_service
    stop = threading.Event()
    workers = [threading.Thread(target=chunk_worker.run, args=(service, stop)) for _ in range(2)]
    loop = aggregator(service)
    for thread in workers:
        thread.start()
    loop.start()
    try:
        job, _ = service.submit(
            TENANT,
            JobRequest(
                task="echo", items=list(range(30)), params={}, chunk_size=3, max_concurrency=2
            ),
        )
        wait_until(lambda: service.get(TENANT, job.id).status.terminal, 60, "the job to end")
    finally:
        stop.set()
        loop.stop()
        for thread in workers:
            thread.join()
    done = service.get(TENANT, job.id)
    assert (done.status, done.succeeded, done.failed) == (JobStatus.SUCCEEDED, 30, 0)
