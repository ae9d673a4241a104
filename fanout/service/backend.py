"""The adapters one deployment wires together: what `fanout.wiring` builds for `Fanout`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

from fanout.ports import (
    ChangeFeed,
    ChunkQueue,
    ChunkStore,
    FanIn,
    FinalOutputs,
    IdempotencyStore,
    InputFiles,
    JobObjects,
    JobStore,
    Leases,
    NotificationQueue,
    Outbox,
    Reconcilable,
    Retention,
    TaskStats,
    UploadReceiver,
    Uploads,
    Wakeups,
)


@dataclass(frozen=True)
class Backend:
    """The adapters one deployment wires together (each port's contract: `fanout.ports`).
    `fan_in` and `changes` exist only where recording a chunk result does not count it (AWS:
    the DynamoDB stream does)."""

    jobs: JobStore
    chunks: ChunkStore
    queue: ChunkQueue
    leases: Leases
    outbox: Outbox
    idempotency: IdempotencyStore
    reconcilable: Reconcilable
    # Where the data lives, as an operator would name it (a file, a table).
    where: str
    # The store puts what it releases into the queue in the same transaction, and deletes the
    # message of a recorded chunk with its record (SQLite: one file): nothing to send after it.
    store_enqueues: bool = False
    fan_in: FanIn | None = None
    changes: ChangeFeed | None = None
    # AWS: a notice per completion event triggers the notifier; elsewhere it polls the outbox.
    notifications: NotificationQueue | None = None
    # AWS: the ordered final output as one object; elsewhere the results are read in place.
    outputs: FinalOutputs | None = None
    # Where `items_url` files are read from (None: this deployment reads none).
    inputs: InputFiles | None = None
    # Where clients put files too large for a request body (None: this deployment takes none).
    uploads: Uploads | None = None
    # One machine: this service receives those files itself (AWS: S3 does).
    upload_receiver: UploadReceiver | None = None
    # Each task's measured time per item, which sizes its jobs' chunks (None: never measured).
    stats: TaskStats | None = None
    # What one chunk costs besides its items (a guess the FANOUT_CHUNK_OVERHEAD_SECONDS setting
    # overrides), and how many chunks run at once at most: the local worker processes; None
    # where workers scale out to each job's window (Lambda).
    chunk_overhead: float = 0.003
    workers: int | None = None
    # AWS: a scope counting the billable requests made inside it, for each job's usage.
    metered: Callable[[], AbstractContextManager[Mapping[str, float]]] | None = None
    # SQLite: ended jobs are purged after FANOUT_RETENTION_DAYS (None: the store expires them).
    retention: Retention | None = None
    # AWS: jobs' S3 objects, deleted when the table removes their job items; for a poller, the
    # table's stream again, from positions of its own (as a second Lambda event source mapping
    # keeps). None where a job's data all goes with the job (SQLite's purge).
    job_objects: JobObjects | None = None
    job_objects_changes: ChangeFeed | None = None
    # One machine: rung as chunks and events are stored, so the pollers wake at once.
    wakeups: Wakeups | None = None
