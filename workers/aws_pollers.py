"""The AWS pipeline's Lambda functions as long-running pollers, for containers and for a laptop
against an emulator: `fanout worker --backend aws` and `fanout serve --backend aws`.

Chunk workers poll SQS (long polling) through the same `chunk_worker` loop as the embedded
runtime; the aggregator reads the table's stream shard by shard from its checkpoints; the
notifier reads the notify queue as its Lambda's event source would (the embedded runtime's
`Notifier` sweeps overdue events as its schedule would); the reconciler is the embedded
runtime's; the job-objects deleter reads the same stream from checkpoints of its own (a second
event source mapping on AWS) and deletes the S3 objects of the jobs whose job item was removed,
as its Lambda function does. All of them call `fanout.service`.
"""

from __future__ import annotations

import logging

from fanout.service import Fanout
from fanout.workers.local import Loop, Part
from fanout.workers.notifier import Notifier

AGGREGATE_EVERY = 0.1  # seconds between stream reads when the stream is idle
# Nothing waits for a job's objects to go: the deleter reads the stream less often.
DELETE_EVERY = 1.0
log = logging.getLogger("fanout.runtime")


def drain_stream(service: Fanout) -> int:
    """Aggregate every record the stream holds now; returns how many were read."""
    read = 0
    while batch := service.aggregate_changes():
        read += batch
    return read


def aggregator(service: Fanout) -> Loop:
    def step() -> None:
        drain_stream(service)

    return Loop("aggregator", AGGREGATE_EVERY, step)


def drain_job_objects(service: Fanout) -> int:
    """Delete the objects of every removed job the deleter's feed holds now; returns how many
    records were read."""
    read = 0
    while batch := service.delete_job_objects_changes():
        read += batch
    return read


def job_objects_loop(service: Fanout) -> Loop:
    """The job-objects function's event source as a part of the runtime: a step every
    DELETE_EVERY seconds."""

    def step() -> None:
        drain_job_objects(service)

    return Loop("job objects", DELETE_EVERY, step)


class NoticePoller:
    """The notifier Lambda's two event sources, notices on the notify queue and the sweep,
    feeding one long-running delivery engine (so a slow receiver holds only its own attempts).
    Every event it hands the engine is claimed first (`notice_event`, `due_events`)."""

    def __init__(self, service: Fanout, engine: Notifier) -> None:
        self.service = service
        self.engine = engine

    def step(self) -> None:
        for notice in self.service.receive_notices(10):
            try:
                event = self.service.notice_event(notice)
            except Exception:
                # Not deleted: the notice comes back after its visibility timeout.
                log.exception("handling the notice of %s failed", notice.event_id)
                continue
            if event is not None:
                self.engine.submit(event)
            # The event is in the outbox: if this process stops before the attempt is
            # recorded, the sweep delivers it once its claim has run out and it is overdue.
            self.service.acknowledge(notice)

    def sweep(self) -> None:
        for event in self.service.due_events():
            self.engine.submit(event)


def pollers(service: Fanout) -> list[Part]:
    """The stream aggregator, the job-objects deleter, and the notifier engine fed by notices
    and the sweep, where the backend has them; in the order to start them."""
    parts: list[Part] = [aggregator(service)] if service.counts_by_stream else []
    if service.deletes_job_objects:
        parts.append(job_objects_loop(service))
    if service.announces_events:
        engine = Notifier(service, poll=False)
        notices = NoticePoller(service, engine)
        parts += [
            engine,
            Loop("notices", 0.01, notices.step),  # receive() long-polls the queue
            Loop("sweep", service.settings.reconcile_interval, notices.sweep),
        ]
    return parts
