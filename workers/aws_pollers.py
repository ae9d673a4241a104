"""The AWS pipeline's Lambda functions as long-running pollers, for containers and for a laptop
against an emulator: `fanout worker --backend aws` and `fanout serve --backend aws`.

Chunk workers poll SQS (long polling) through the same `chunk_worker` loop as the embedded
runtime; the aggregator reads the table's stream shard by shard from its checkpoints; the
notifier and the reconciler are the embedded runtime's. All of them call `fanout.service`.
"""

from __future__ import annotations

from fanout.service import Fanout
from workers.local import Loop, Notifier

AGGREGATE_EVERY = 0.1  # seconds between stream reads when the stream is idle


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


def background(service: Fanout, notifier: Notifier) -> list[Loop]:
    """Every poller but the chunk workers (processes under `workers.local.Supervisor`)."""
    return [
        aggregator(service),
        Loop("notifier", 0.05, notifier.step),
        Loop("reconciler", service.settings.reconcile_interval, service.reconcile),
    ]
