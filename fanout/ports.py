"""The narrow interfaces the core needs from a backend: a new backend implements each of these
(and `fanout.wiring` builds them into a `fanout.service.Backend`), and nothing else.

Every operation is atomic and safe to repeat. Adapters translate their vendor's errors into
`fanout.errors`: `StoreUnavailable` when the store cannot write now (a full disk), `BackendError`
for any other failure of the vendor's service. No transaction handle appears in a signature.

Crash safety: a store that keeps the chunk queue in its own transactions (SQLite) enqueues what
it releases in the same step (`Backend.store_enqueues`); any other store returns the released
chunks for the caller to send, and `release_window` re-sends what a crash between the two lost.
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
    KeyClaim,
    NewJob,
    Notice,
    Page,
    RecordOutcome,
    TenantId,
    UploadTarget,
    WebhookEvent,
)


class JobStore(Protocol):
    def create_job(self, job: NewJob, chunks: Sequence[ChunkInput]) -> list[ChunkRef]:
        """Store the job and all chunk inputs at once (all or nothing); mark the first
        `max_concurrency` chunks released and return them for sending. Raises JobExists if a
        job with this id was stored before (then nothing is written)."""
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

    def unstarted_chunks(self) -> int:
        """Chunks of active jobs not yet started (held back by their window, or released and
        waiting): an indexed count or a counter, never a scan, and approximate where exact
        would cost more (say so)."""
        ...

    def probe(self, now: float) -> None:
        """Write a small record and read it back: raises StoreUnavailable if the store cannot
        write now (for readiness checks)."""
        ...

    def result_blocks(self, job_id: JobId, start: int) -> Iterator[tuple[int, bytes]]:
        """Each recorded chunk that ends after item `start`, in input order, as (its first item's
        index, its outcome lines joined by newlines). Chunks not yet recorded are absent."""
        ...

    def redrive(self, job_id: JobId, now: float) -> list[ChunkRef]:
        """Make an ended job's failed items, and those that never ran, pending again, as a new
        run of the same job: its failed count back to 0, status queued, `redrive_count` up by
        one, its previous completion event dropped (the next end queues a new one, with a new
        id); what the job recorded for its other items stays. Releases the first window and
        returns it. Atomic: after a crash either nothing changed or the job runs again. Raises
        JobNotFinished while it runs, NothingToRedrive when every item succeeded."""
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
        requests: Mapping[str, float] | None = None,
    ) -> bool:
        """Move a non-terminal job to `status` and queue its completion event, at most once:
        True for the one caller that made the transition, False for everyone after. A store
        that keeps usage by request adds `requests` (finalizing's) in the same write."""
        ...


class ChunkStore(Protocol):
    def start_chunk(self, chunk: ChunkRef, now: float) -> bytes | None:
        """Mark a live chunk running and return its items as a JSON array; None when the chunk
        is done, split, or its job is terminal (the message is then just deleted)."""
        ...

    def record_chunk_result(
        self, chunk: ChunkRef, result: ChunkResult, receipt: str | None = None
    ) -> RecordOutcome:
        """Store the result, only on the first record of a live chunk (`counted` says whether
        this call was it). Safe to repeat. A store whose queue shares its transactions also
        deletes the message `receipt` names in the same step.

        A backend without a `FanIn` also moves the job's counters and releases the next chunks
        of the window here, in the same atomic step. A backend with one leaves that to it:
        `released` is then empty and `complete` False."""
        ...

    def split_chunk(self, chunk: ChunkRef) -> list[ChunkRef]:
        """Replace a live chunk of two or more items by its two halves, released at once.
        Returns [] if the chunk was already recorded or split."""
        ...

    def release_window(self, job_id: JobId) -> list[ChunkRef]:
        """Re-release what a crash may have left unreleased: every released chunk not yet started
        (whose message may have been lost between the store and the queue), and what the window
        has room for. Sending a chunk twice is harmless; never sending it is a bug."""
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


class JobObjects(Protocol):
    """A job's objects kept apart from the store (AWS: S3), deleted when the store removes the
    job (DynamoDB's TTL removes its job item last), which no fixed object age can match."""

    def delete_removed(self, records: Sequence[Mapping[str, Any]]) -> Mapping[JobId, int]:
        """Delete the objects of each job whose removal `records` (change records in stream
        order) hold; any other record is ignored. Returns how many objects each such job had.
        Safe to repeat with the same records (Lambda retries a failed batch whole): deleting
        what is gone already succeeds. Raises BackendError if any could not be deleted."""
        ...


class Reconcilable(Protocol):
    def jobs_to_reconcile(self, now: float, stale_after: float) -> list[Job]:
        """Non-terminal jobs that are complete, past their deadline, or idle for `stale_after`
        (the candidates; `Fanout.reconcile` decides what each needs)."""
        ...


class Outbox(Protocol):
    def due_events(self, now: float, limit: int) -> list[WebhookEvent]:
        """Pending events whose next attempt is at or before `now`, soonest first."""
        ...

    def claim_attempts(
        self, events: Sequence[WebhookEvent], now: float, lease_until: float
    ) -> list[bool]:
        """Take the next attempt of each event as read (same attempt count, still pending, due
        at `now`): it is not due again before `lease_until` unless recorded. For each event, in
        order, True for the one deliverer that claimed it, so no attempt goes out twice; a claim
        whose deliverer died expires with its lease. Each claim stands alone (one refused takes
        nothing from the others); a store with transactions makes the batch one write."""
        ...

    def renew_claim(self, event: WebhookEvent, lease_until: float) -> bool:
        """Extend the claim this deliverer holds on `event`'s attempt (`event.next_attempt_at`
        is the lease it claimed or last renewed) to `lease_until`. False when the claim is lost:
        the lease ran out and another deliverer claimed the attempt, or it was recorded. With
        `lease_until` now, it hands the claim back: the attempt is due again at once."""
        ...

    def undelivered(self) -> int:
        """How many events are pending (an indexed count)."""
        ...

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
    """Idempotency keys, each bound at its first claim to the id of the one job it creates: a
    request that dies holding a key leaves that id behind, and whoever takes the key over
    creates (at most once, `JobExists`) the same job."""

    def claim(
        self, tenant: TenantId, key: str, fingerprint: str, job_id: JobId, now: float, lease: float
    ) -> KeyClaim:
        """Claim the key for a request with this body fingerprint. A new (or day-old) key is
        bound to `job_id`; a finished one returns its job id and stored response; one claimed
        less than `lease` seconds ago raises IdempotencyConflict, an older claim is taken over
        (its holder is presumed dead) and returns its job id. A different fingerprint raises
        IdempotencyMismatch."""
        ...

    def finish(self, tenant: TenantId, key: str, response: bytes) -> None: ...

    def abandon(self, tenant: TenantId, key: str) -> None:
        """Release an unfinished key whose request stored nothing, so a retry may use it."""
        ...


class ChunkQueue(Protocol):
    """A queue with SQS semantics: visibility timeout, receive count, dead letters."""

    def send(self, chunks: Sequence[ChunkRef]) -> None: ...

    def receive(
        self, max_messages: int, visibility_timeout: float, owner: str = ""
    ) -> list[Delivery]:
        """Deliveries whose receive count is at most the queue's limit; messages received
        more often than that move to the dead letters instead. `owner` names the consumer
        (see `Leases`)."""
        ...

    def delete(self, receipt: str) -> None: ...

    def extend(self, receipt: str, visibility_timeout: float) -> None: ...

    def release(self, receipt: str) -> None:
        """Hand a received message back unprocessed: visible again at once."""
        ...

    def receive_dead(
        self, max_messages: int, visibility_timeout: float, owner: str = ""
    ) -> list[Delivery]: ...


class Leases(Protocol):
    """Who holds received messages, where the queue can tell (SQLite: each message records its
    consumer). A consumer that dies holding messages would hide them for their whole visibility
    timeout; a queue that knows its consumers hands them back as soon as one is known dead. A
    queue that cannot (SQS) implements both as no-ops: the visibility timeout is its lease."""

    def heartbeat(self, owner: str, now: float) -> None:
        """Record that the consumer `owner` (a token unique to one process's life) is alive."""
        ...

    def reclaim(self, owner: str | None, now: float, dead_after: float) -> int:
        """Make visible at once the messages held by `owner` (known dead), or with None by every
        consumer not heard from for `dead_after` seconds. Receive counts stand, so a chunk that
        kills its consumers still reaches the dead letters. Returns how many."""
        ...


class NotificationQueue(Protocol):
    """Notices of completion events to deliver (AWS: the notify queue, which triggers the
    notifier). A notice may be lost or come twice: the outbox stays the record of what is owed."""

    def announce(self, notice: Notice, delay: float = 0.0) -> None:
        """Send the notice, visible after `delay` seconds (at most the queue's limit)."""
        ...

    def receive(self, max_messages: int) -> list[Notice]: ...

    def delete(self, receipt: str) -> None: ...


class Listener(Protocol):
    """Where a process waits for a kind of work to be stored (`Wakeups`)."""

    def fileno(self) -> int: ...

    def wait(self, timeout: float) -> bool:
        """Wait until rung or `timeout` seconds have passed; whether it was rung (rings heard
        meanwhile count as one)."""
        ...

    def drain(self) -> bool:
        """Take every ring heard so far, without waiting; whether there was any."""
        ...

    def close(self) -> None: ...


class Wakeups(Protocol):
    """Rung as work is stored, so that a process waiting for it starts at once rather than at
    its next poll (one machine: the workers and the notifier poll the store). A ring may go
    unheard: the polls stay, as the floor."""

    def chunks(self) -> Listener | None:
        """A listener for chunks put in the queue; None where none can be had."""
        ...

    def events(self) -> Listener | None:
        """A listener for completion events put in the outbox; None where none can be had."""
        ...

    def ring_chunks(self) -> None:
        """Chunks were put in the queue (and committed)."""
        ...

    def ring_events(self) -> None:
        """A completion event was put in the outbox (and committed)."""
        ...


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


class Retention(Protocol):
    """Removing ended jobs once their retention has passed, where the store does not expire
    them itself (DynamoDB's TTL does; a SQLite file keeps everything until told)."""

    def purge_expired(self, now: float, retention: float, limit: int) -> int:
        """Delete up to `limit` ended jobs that finished more than `retention` seconds before
        `now` and whose webhook is not still being delivered, each with everything stored for
        it (chunks, results, messages, outbox row, idempotency keys), and expired idempotency
        keys; one short transaction. Returns how many jobs went (0: none is due). Safe to
        repeat and to run beside everything else."""
        ...

    def compact(self, max_pages: int) -> int:
        """Give up to `max_pages` pages the purges freed back to the file system, in one short
        transaction; returns how many were free before (0: nothing to give back)."""
        ...


class Uploads(Protocol):
    """Where a client puts a file too large for a request body before naming it as a job's
    `items_url` (AWS: a presigned S3 PUT, as Lambda takes 6 MB at most; one machine: a signed
    URL on the server itself, so one client works on both)."""

    def create(self, name: str, content_type: str, expires_at: float) -> UploadTarget:
        """A place for one file called `name` (unguessable: the caller makes it so), writable
        until `expires_at` by whoever holds the URL, without other credentials."""
        ...


class UploadSink(Protocol):
    """One file being received: written in parts, then kept whole (`commit`) or dropped."""

    def write(self, data: bytes) -> None: ...

    def commit(self) -> None:
        """Keep the file under its name; raises UploadRefused if that name was written since."""
        ...

    def abort(self) -> None: ...


class UploadReceiver(Protocol):
    """The service itself receives the PUTs of the upload URLs it gives (one machine)."""

    def open(self, name: str, expires: int, signature: str) -> UploadSink:
        """Raises UploadRefused for a URL not signed here, expired, or used already."""
        ...
