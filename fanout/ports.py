"""The narrow interfaces the core needs from a backend.

Every operation is atomic and safe to repeat. Adapters translate their vendor's errors into
`fanout.errors`; no transaction handle appears in a signature.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, Protocol

from fanout.models import (
    ChangeBatch,
    ChunkInput,
    ChunkRef,
    ChunkResult,
    Counted,
    Delivery,
    EventId,
    Job,
    JobId,
    JobStatus,
    NewJob,
    Notice,
    Page,
    RecordOutcome,
    TenantId,
    WebhookEvent,
)


class JobStore(Protocol):
    def create_job(self, job: NewJob, chunks: Sequence[ChunkInput]) -> list[ChunkRef]:
        """Store the job and all chunk inputs at once (all or nothing); mark the first
        `max_concurrency` chunks released and return them for sending."""
        ...

    def get_job(self, job_id: JobId, tenant: TenantId | None = None) -> Job | None:
        """The job, or None if it does not exist or belongs to another tenant."""
        ...

    def list_jobs(
        self, tenant: TenantId, status: JobStatus | None, cursor: str | None, limit: int
    ) -> Page: ...

    def set_max_concurrency(self, job_id: JobId, max_concurrency: int) -> list[ChunkRef]:
        """Change the window of a non-terminal job; return chunks the wider window releases."""
        ...

    def result_blocks(self, job_id: JobId, start: int) -> Iterator[tuple[int, bytes]]:
        """Each recorded chunk that ends after item `start`, in input order, as (its first item's
        index, its outcome lines joined by newlines). Chunks not yet recorded are absent."""
        ...

    def webhook_secret(self, job_id: JobId) -> str | None: ...

    def claim_completion(
        self,
        job_id: JobId,
        status: JobStatus,
        finished_at: float,
        reduce_value: Any,
        error: str | None,
        event: WebhookEvent | None,
    ) -> bool:
        """Move a non-terminal job to `status` and queue its completion event, at most once:
        True for the one caller that made the transition, False for everyone after."""
        ...


class ChunkStore(Protocol):
    def start_chunk(self, chunk: ChunkRef, now: float) -> bytes | None:
        """Mark a live chunk running and return its items as a JSON array; None when the chunk
        is done, split, or its job is terminal (the message is then just deleted)."""
        ...

    def record_chunk_result(self, chunk: ChunkRef, result: ChunkResult) -> RecordOutcome:
        """Store the result, only on the first record of a live chunk (`counted` says whether
        this call was it). Safe to repeat.

        A backend without a `FanIn` also moves the job's counters and releases the next chunks
        of the window here, in the same atomic step. A backend with one leaves that to it:
        `released` is then empty and `complete` False."""
        ...

    def split_chunk(self, chunk: ChunkRef) -> list[ChunkRef]:
        """Replace a live chunk of two or more items by its two halves, released at once.
        Returns [] if the chunk was already recorded or split."""
        ...

    def release_window(self, job_id: JobId) -> list[ChunkRef]:
        """Re-release what a crash may have left unreleased: every chunk that should be in the
        queue. Sending a chunk twice is harmless; never sending it is a bug."""
        ...


class FanIn(Protocol):
    """Fan-in after the fact, for a backend whose `record_chunk_result` only stores results
    (AWS: a consumer of the table's DynamoDB stream)."""

    def count(self, records: Sequence[Mapping[str, Any]]) -> list[Counted]:
        """Count each chunk result first stored in `records` (change records in stream order):
        move its job's counters and release the next chunks of its window. Safe to repeat with
        the same records (Lambda retries a failed batch whole): each result counts once, and
        only the one count that completes a job reports `complete`."""
        ...


class ChangeFeed(Protocol):
    """The store's change records for a long-running poller: what Lambda's stream event source
    does on AWS (shard by shard, parent shards before their children, from a checkpoint)."""

    def read(self, limit: int) -> list[ChangeBatch]:
        """The next records of each readable shard after its checkpoint, at most `limit` a
        shard; reading again without `commit` returns the same records again."""
        ...

    def commit(self, batch: ChangeBatch) -> None:
        """Move the batch's shard checkpoint past it, durably."""
        ...


class Reconcilable(Protocol):
    def jobs_to_reconcile(self, now: float, stale_after: float) -> list[Job]:
        """Non-terminal jobs that are complete, past their deadline, or idle for `stale_after`."""
        ...


class Outbox(Protocol):
    def due_events(self, now: float, limit: int) -> list[WebhookEvent]: ...

    def record_attempt(
        self,
        event_id: EventId,
        at: float,
        status_code: int | None,
        error: str | None,
        next_attempt_at: float | None,
        delivered: bool,
    ) -> None:
        """Append an attempt; `next_attempt_at` None with `delivered` False gives up."""
        ...


class IdempotencyStore(Protocol):
    def begin(self, tenant: TenantId, key: str, fingerprint: str, now: float) -> bytes | None:
        """Claim the key. Returns the stored response for a finished identical request, None when
        the caller now owns the key. Raises IdempotencyConflict while another request holds it,
        IdempotencyMismatch when the key was used with a different body."""
        ...

    def finish(self, tenant: TenantId, key: str, response: bytes) -> None: ...

    def abandon(self, tenant: TenantId, key: str) -> None:
        """Release a key whose request failed, so the client may retry with it."""
        ...


class ChunkQueue(Protocol):
    """A queue with SQS semantics: visibility timeout, receive count, dead letters."""

    def send(self, chunks: Sequence[ChunkRef]) -> None: ...

    def receive(self, max_messages: int, visibility_timeout: float) -> list[Delivery]:
        """Deliveries whose receive count is at most the queue's limit; messages received
        more often than that move to the dead letters instead."""
        ...

    def delete(self, receipt: str) -> None: ...

    def extend(self, receipt: str, visibility_timeout: float) -> None: ...

    def receive_dead(self, max_messages: int, visibility_timeout: float) -> list[Delivery]: ...


class NotificationQueue(Protocol):
    """Notices of completion events to deliver (AWS: the notify queue, which triggers the
    notifier). A notice may be lost or come twice: the outbox stays the record of what is owed."""

    def announce(self, notice: Notice, delay: float = 0.0) -> None:
        """Send the notice, visible after `delay` seconds (at most the queue's limit)."""
        ...

    def receive(self, max_messages: int) -> list[Notice]: ...

    def delete(self, receipt: str) -> None: ...


class FinalOutputs(Protocol):
    """Each finished job's ordered results as one JSON Lines object (AWS: S3)."""

    def write(self, job_id: JobId, lines: Iterable[bytes]) -> str:
        """Write (or overwrite with the same content) the job's output; returns its location."""
        ...

    def location(self, job_id: JobId) -> str: ...


class InputFiles(Protocol):
    """Files a job's items are read from (`items_url`): on AWS objects in the service's bucket,
    on one machine files under the input directory. Read as a stream, never whole."""

    def open(self, url: str) -> IO[bytes]:
        """The file `url` names, opened for reading from its start (the caller closes it).
        Raises InputNotFound when there is no such file, InputRefused when `url` names what
        this service does not read (another scheme or bucket, a path outside the input
        directory or a link out of it, something other than a regular file)."""
        ...


class TaskStats(Protocol):
    """Each task's measured seconds per item, a moving average over its finished chunks (what
    `fanout.chunking` sizes the next job's chunks by)."""

    def seconds_per_item(self, task: str) -> float | None:
        """The task's average, or None before its first measurement."""
        ...

    def record_time(self, task: str, seconds_per_item: float, weight: float, now: float) -> None:
        """Move the task's average towards a new measurement, atomically: `average + weight ·
        (seconds_per_item - average)`, or the measurement itself when there is none yet. Two
        writers at once may each move it, or one of them may be dropped; neither is an error."""
        ...
