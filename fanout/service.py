"""The policy: what submitting, running, finishing and reconciling a job mean.

`api/` and `workers/` call only this module. Every function here is safe to call again after a
crash at any point: stores make each step idempotent, and the reconciler repeats what a crash cut
short (release, finalize).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import urlsplit

from pydantic_core import from_json, to_json

from fanout import chunking, logs, metrics, readers, results, retention, runner, tasks, webhooks
from fanout.crashpoints import crash_point
from fanout.errors import (
    InputUnavailable,
    InvalidJob,
    JobExists,
    JobFinished,
    JobNotFound,
    Overloaded,
    UploadRefused,
)
from fanout.intake import BATCH, Intake
from fanout.models import (
    Backlog,
    ChunkRef,
    ChunkResult,
    Counted,
    Delivery,
    DeliveryStatus,
    EventId,
    Job,
    JobId,
    JobOptions,
    JobStatus,
    NewJob,
    Notice,
    Page,
    TenantId,
    UploadTarget,
    Webhook,
    WebhookEvent,
)
from fanout.ports import (
    ChangeFeed,
    ChunkQueue,
    ChunkStore,
    FanIn,
    FinalOutputs,
    IdempotencyStore,
    InputFiles,
    JobStore,
    Leases,
    NotificationQueue,
    Outbox,
    Reconcilable,
    Retention,
    TaskStats,
    UploadReceiver,
    Uploads,
    UploadSink,
)
from fanout.settings import Settings
from fanout.views import public_job

MAX_LISTED_ERRORS = 50
# Where notices announce each event, the schedule delivers only events overdue by this much:
# those whose notice was lost (a crash between the terminal transition and the announce), or
# whose retry was further off than the queue can delay it. Short: each attempt is claimed, so
# the sweep and a late notice never both send it.
NOTICE_GRACE = 10.0
MAX_NOTICE_DELAY = 900.0  # SQS delays a message by at most 15 minutes
# A claimed attempt about to be sent must hold its claim this much longer than the attempt's
# deadline: another host whose clock runs up to a second ahead sees the lease end earlier.
CLAIM_MARGIN = 2.0
BACKLOG_TTL = 1.0  # seconds a backlog count is reused: it is asked on every POST
log = logging.getLogger("fanout.service")


class WorkerLost(Exception):
    """The item's worker process died or hung on every delivery."""


class TaskNotFound(Exception):
    """The worker has no task of this name (its module is not in FANOUT_TASKS)."""


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


@dataclass(frozen=True)
class JobRequest:
    """A job as submitted. Its items come either in `items` (any iterable, read once, item by
    item: a list, or a stream's items as they are parsed) or from the file `items_url` names,
    read as `items_format` (None: as its name's extension says)."""

    task: str
    items: Iterable[Any]
    params: dict[str, Any]
    webhook_url: str | None = None
    webhook_secret: str | None = None
    chunk_size: int | None = None
    max_concurrency: int | None = None
    max_attempts: int | None = None
    tolerated_failure_count: int | None = None
    tolerated_failure_percentage: float | None = None
    timeout_seconds: float | None = None
    reduce: str | None = None
    items_url: str | None = None
    items_format: readers.Format | None = None


@dataclass
class Submission:
    """A job checked and its items validated and spooled, not yet stored (`Fanout.take_in`)."""

    request: JobRequest
    task: tasks.TaskDef
    intake: Intake

    def __enter__(self) -> Submission:
        return self

    def __exit__(self, *exc: object) -> None:
        self.intake.close()

    def fingerprint(self) -> str:
        """What an idempotency key compares: the request's JSON value in canonical form (sorted
        keys, no spaces) with the digest of its validated items, hashed. The same job sent
        with other spacing, key order or item spelling has the same fingerprint."""
        fields = {f.name: getattr(self.request, f.name) for f in dataclasses.fields(self.request)}
        fields["items"] = self.intake.digest()
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


# An upload's format, as `POST /uploads` names it: the file's extension (which tells the job how
# to read it) and the Content-Type the PUT carries.
UPLOAD_FORMATS = {"json": "json", "jsonl": "jsonl", "ndjson": "jsonl", "csv": "csv"}
UPLOAD_TYPES = {"json": "application/json", "jsonl": "application/x-ndjson", "csv": "text/csv"}
STATS_TTL = 5.0  # seconds a task's measured time per item is reused before it is read again


def event_id(job: Job) -> EventId:
    """The completion event's id (the `webhook-id`): one per run, a redrive's runs counted."""
    suffix = f"_{job.redrive_count}" if job.redrive_count else ""
    return EventId(f"evt_{job.id}{suffix}")


def new_job_id() -> JobId:
    """Time-ordered, so ids sort by creation like the listing does."""
    return JobId(f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(8)}")


# Renders the response an idempotent submit stores and replays: from the job, and the webhook
# secret generated for it (None if the client gave one).
Render = Callable[[Job, "str | None"], bytes]


class Fanout:
    def __init__(self, backend: Backend, settings: Settings) -> None:
        self.backend = backend
        self.settings = settings
        self._times = chunking.TaskTimes(backend.stats) if backend.stats is not None else None
        self._measured: dict[str, tuple[float, float | None]] = {}
        self._backlog: tuple[float, Backlog] | None = None
        self._backlog_lock = threading.Lock()

    @property
    def where(self) -> str:
        return self.backend.where

    @property
    def counts_by_stream(self) -> bool:
        """Results are counted by a change-feed poller (`aggregate_changes`), not as recorded."""
        return self.backend.changes is not None

    @property
    def purges(self) -> bool:
        """Ended jobs are removed by `purge`, run periodically (the store has no expiry)."""
        return self.backend.retention is not None and self.settings.retention_days > 0

    @property
    def announces_events(self) -> bool:
        """Completion events are announced on a notification queue (`receive_notices`)."""
        return self.backend.notifications is not None

    # -- submit -------------------------------------------------------------------------------

    def submit_once(self, tenant: TenantId, request: JobRequest, key: str, render: Render) -> bytes:
        """Submit under an idempotency key: the first request with the key creates the job and
        stores `render`'s response; a repeat with the same job (`Submission.fingerprint`) gets
        that response back.
        The key is bound to its job's id when first claimed, so a request that died holding it
        is taken over after `idempotency_lease` seconds and creates that same job at most once.
        Raises IdempotencyConflict while another live request holds the key, IdempotencyMismatch
        for another job, InvalidJob (before the key is claimed) for an invalid one."""
        with self.take_in(request) as submission:
            keys = self.backend.idempotency
            lease, now = self.settings.idempotency_lease, time.time()
            claim = keys.claim(tenant, key, submission.fingerprint(), new_job_id(), now, lease)
            if claim.response is not None:
                return claim.response
            try:
                job, secret = self.store(tenant, submission, claim.job_id)
            except JobExists:
                job, secret = self._existing(claim.job_id, request)
            except Exception:
                if self.backend.jobs.get_job(claim.job_id) is None:
                    self._abandon(tenant, key)  # nothing stored: the client may retry at once
                raise
        crash_point("submit.keyed")
        response = render(job, secret)
        keys.finish(tenant, key, response)
        return response

    def _existing(self, job_id: JobId, request: JobRequest) -> tuple[Job, str | None]:
        """A job an earlier holder of the key created, with the secret generated for it."""
        job = self.backend.jobs.get_job(job_id)
        assert job is not None, "JobExists is raised only for a stored job"
        generated = request.webhook_url is not None and request.webhook_secret is None
        return job, self.backend.jobs.webhook_secret(job_id) if generated else None

    def _abandon(self, tenant: TenantId, key: str) -> None:
        try:
            self.backend.idempotency.abandon(tenant, key)
        except Exception:
            log.exception("could not release idempotency key %r; it expires with its lease", key)

    def submit(
        self, tenant: TenantId, request: JobRequest, job_id: JobId | None = None
    ) -> tuple[Job, str | None]:
        """Validate, chunk and durably store a job, then release its first window. Returns the
        job and the webhook secret if one was generated (shown to the client only this once).
        Raises InvalidJob naming the fields, item indices or lines at fault (nothing is
        stored then, even when the items were a stream rejected part-way), JobExists if
        `job_id` is taken, StoreUnavailable if the store cannot write now."""
        with self.take_in(request) as submission:
            return self.store(tenant, submission, job_id)

    def take_in(self, request: JobRequest) -> Submission:
        """The first half of `submit`: check the request, then read, validate and spool every
        item (a stream is read to its end here). Stores nothing; raises InvalidJob. Close the
        submission (a context manager) when done with it."""
        task = self._checked(request)
        return Submission(request, task, self._take_in(task, request))

    def store(
        self, tenant: TenantId, submission: Submission, job_id: JobId | None = None
    ) -> tuple[Job, str | None]:
        """The second half of `submit`: chunk a taken-in job, store it durably (with the id
        `job_id`, if given) and release its first window."""
        request, intake = submission.request, submission.intake
        options = self._options(request)
        size = request.chunk_size or self._chunk_size(submission.task, intake.total, options)
        chunks = list(intake.chunks(size, self.settings.max_chunk_bytes))
        secret = request.webhook_secret or (webhooks.new_secret() if request.webhook_url else None)
        new = NewJob(
            id=job_id or new_job_id(),
            tenant=tenant,
            task=submission.task.name,
            params=request.params,
            options=dataclasses.replace(options, chunk_size=size),
            webhook=Webhook(request.webhook_url, secret)
            if request.webhook_url and secret
            else None,
            total=intake.total,
            created_at=time.time(),
        )
        with self._metered() as requests:
            released = self.backend.jobs.create_job(
                dataclasses.replace(new, requests=requests), chunks
            )
        crash_point("submit.stored")
        self._stored_chunks(len(chunks))
        try:
            self._send(released)
        except Exception:
            # The job is stored, so it is accepted; the reconciler sends its window again.
            log.exception("job %s stored, but sending its first chunks failed", new.id)
        if new.total == 0:
            self.finalize(new.id)
        job = self.backend.jobs.get_job(new.id)
        assert job is not None
        logs.job_submitted(job)
        metrics.job_submitted(job.task)
        return job, secret if request.webhook_secret is None else None

    def _checked(self, request: JobRequest) -> tasks.TaskDef:
        """The request's task, once its task, reducer and webhook URL are known to be good."""
        task = tasks.get_task(request.task)
        if task is None:
            known = [t.name for t in tasks.all_tasks()]
            message = f"no task named {request.task[:200]!r}"
            raise InvalidJob("Unknown task", [_problem("task", message, known=known)])
        if request.reduce is not None and tasks.get_reducer(request.reduce) is None:
            known = tasks.all_reducers()
            message = f"no reducer named {request.reduce[:200]!r}"
            raise InvalidJob("Unknown reducer", [_problem("reduce", message, known=known)])
        if request.webhook_url is not None:
            try:
                webhooks.check_url(request.webhook_url, self.settings.webhook_allow_networks)
            except webhooks.UnsafeURL as error:
                problem = _problem("webhook.url", str(error))
                raise InvalidJob("Webhook URL refused", [problem]) from error
        return task

    def _options(self, request: JobRequest) -> JobOptions:
        return JobOptions(
            chunk_size=request.chunk_size or 0,
            max_concurrency=request.max_concurrency or self.settings.default_max_concurrency,
            max_attempts=request.max_attempts or self.settings.default_max_attempts,
            tolerated_failure_count=request.tolerated_failure_count,
            tolerated_failure_percentage=request.tolerated_failure_percentage,
            timeout_seconds=request.timeout_seconds,
            reduce=request.reduce,
        )

    def _take_in(self, task: tasks.TaskDef, request: JobRequest) -> Intake:
        """Every item read (from the request, or as a stream from its `items_url` file),
        validated and spooled. Raises InvalidJob naming the item index or line at fault."""
        intake = Intake(task, self.settings.max_items)
        try:
            self._read(intake, request)
        except BaseException:
            intake.close()
            raise
        return intake

    def _read(self, intake: Intake, request: JobRequest) -> None:
        field = "items" if request.items_url is None else "items_url"
        try:
            if request.items_url is None:
                intake.take(request.items)
                return
            with self._open_input(request.items_url) as stream:
                intake.take(self._items_of(request, stream))
        except readers.Unreadable as error:
            problem = _problem(field, error.message, line=error.line)
            raise InvalidJob("The items cannot be read", [problem]) from error
        except readers.TooLarge as error:
            if request.items_url is None:
                raise  # a request body: the HTTP edge answers 413
            raise InvalidJob("Input file too large", [_problem(field, str(error))]) from error

    def _open_input(self, url: str) -> IO[bytes]:
        if self.backend.inputs is None:
            message = "this deployment reads no input files"
            raise InvalidJob("Input files are not available", [_problem("items_url", message)])
        try:
            return self.backend.inputs.open(url)
        except InputUnavailable as error:
            problem = _problem("items_url", error.reason)
            raise InvalidJob("The input file cannot be read", [problem]) from error

    def _items_of(self, request: JobRequest, stream: IO[bytes]) -> Iterator[Any]:
        url = request.items_url or ""
        format = request.items_format or readers.format_of(urlsplit(url).path or url)
        if format is None:
            message = "name a .json, .jsonl, .ndjson or .csv file, or give items_format"
            raise InvalidJob("Unknown input format", [_problem("items_url", message)])
        limited = readers.limited(stream, self.settings.max_input_bytes)
        return readers.read_items(limited, format, self.settings.max_item_bytes)

    def _chunk_size(self, task: tasks.TaskDef, total: int, options: JobOptions) -> int:
        """Items per chunk from the job's size and the task's measured time per item, for as
        many chunks at once as the job's window and the workers allow (`fanout.chunking`)."""
        workers = options.max_concurrency
        if self.backend.workers is not None:
            workers = min(workers, self.backend.workers)
        sizing = chunking.Sizing(
            overhead_seconds=self.settings.chunk_overhead_seconds or self.backend.chunk_overhead,
            max_items=self.settings.max_chunk_items,
            max_seconds=self.settings.max_chunk_seconds,
        )
        size = chunking.chunk_size(total, self._seconds_per_item(task.name), workers, sizing)
        # Whole intake batches are cut without re-encoding their items (Intake.chunks).
        return size if size < BATCH else size - size % BATCH

    def _seconds_per_item(self, task: str) -> float | None:
        """The task's measured time per item, read from the store at most every STATS_TTL
        seconds (a submit should not cost a read more)."""
        if self.backend.stats is None:
            return None
        now = time.monotonic()
        read_at, value = self._measured.get(task, (-STATS_TTL, None))
        if now - read_at >= STATS_TTL:
            value = self.backend.stats.seconds_per_item(task)
            self._measured[task] = (now, value)
        return value

    # -- uploads ------------------------------------------------------------------------------

    def create_upload(self, tenant: TenantId, format: str) -> UploadTarget:
        """A place to PUT one input file of `format` (json, jsonl, csv) before `POST /jobs` names
        it as `items_url`; valid for `upload_url_seconds`. The name is random (128 bits): the
        URL, like S3's presigned ones, is the only credential the PUT needs. Raises
        UploadRefused where this deployment takes no uploads."""
        if self.backend.uploads is None:
            raise UploadRefused("this deployment takes no uploads")
        extension = UPLOAD_FORMATS[format]
        name = f"{uuid.uuid4().hex}.{extension}"
        expires_at = time.time() + self.settings.upload_url_seconds
        target = self.backend.uploads.create(name, UPLOAD_TYPES[extension], expires_at)
        log.info("upload %s for tenant %s", target.items_url, tenant)
        return target

    def receive_upload(self, name: str, expires: int, signature: str) -> UploadSink:
        """Where a PUT to an upload URL this service signed writes its file (one machine);
        raises UploadRefused for any other URL, or where uploads go elsewhere (S3)."""
        if self.backend.upload_receiver is None:
            raise UploadRefused("uploads go where POST /uploads said, not to this service")
        return self.backend.upload_receiver.open(name, expires, signature)

    # -- read ---------------------------------------------------------------------------------

    def get(self, tenant: TenantId, job_id: JobId) -> Job:
        job = self.backend.jobs.get_job(job_id, tenant)
        if job is None:
            raise JobNotFound(job_id)
        return self._with_output(job)

    def list(
        self, tenant: TenantId, status: JobStatus | None, cursor: str | None, limit: int
    ) -> Page:
        page = self.backend.jobs.list_jobs(tenant, status, cursor, limit)
        return dataclasses.replace(page, items=[self._with_output(job) for job in page.items])

    def _with_output(self, job: Job) -> Job:
        """A terminal job's output location: it was written before the job became terminal."""
        if self.backend.outputs is None or not job.status.terminal:
            return job
        return dataclasses.replace(job, output=self.backend.outputs.location(job.id))

    def result_lines(self, job: Job, start: int, limit: int | None) -> Iterator[bytes]:
        """Outcome lines in input order from `start`, `limit` of them (None: to the end). An item
        with no outcome yet reads `pending`, or `cancelled` once the job has ended."""
        stop = job.total if limit is None else min(job.total, start + limit)
        gap = b"cancelled" if job.status.terminal else b"pending"
        position = start
        for first, lines in self.backend.jobs.result_blocks(job.id, start):
            if position >= stop:
                return
            for index in range(position, min(first, stop)):
                yield b'{"index":%d,"status":"%b"}' % (index, gap)
            position = max(position, first)
            block = lines.split(b"\n")[position - first : stop - first]
            yield from block
            position += len(block)
        for index in range(position, stop):
            yield b'{"index":%d,"status":"%b"}' % (index, gap)

    def result_text(
        self, job: Job, start: int, max_lines: int, max_bytes: int
    ) -> tuple[bytes, int]:
        """Outcomes from item `start` in input order as JSON Lines, in one bounded piece: see
        `fanout.results.outcome_text`. Returns the text and the index to continue from."""
        return results.outcome_text(self.backend.jobs, job, start, max_lines, max_bytes)

    # -- change -------------------------------------------------------------------------------

    def cancel(self, tenant: TenantId, job_id: JobId) -> Job:
        """Stop a job: chunks not yet started never run, and its items without an outcome count
        as cancelled. Raises JobFinished if it had already ended."""
        job = self.get(tenant, job_id)
        if job.status.terminal:
            raise JobFinished(job_id)
        if not self._complete(job, JobStatus.CANCELLED, None, "cancelled by the client"):
            raise JobFinished(job_id)
        return self.get(tenant, job_id)

    def redrive(self, tenant: TenantId, job_id: JobId) -> Job:
        """Run an ended job's failed items again and, if it was cancelled or timed out, the
        items that never ran, as Step Functions' RedriveExecution does for a Map Run: the same
        job, its attempts afresh, its results still in input order, and one new completion
        event (a new webhook id) when it ends again. Raises JobNotFinished while it runs,
        NothingToRedrive when every item succeeded."""
        self.get(tenant, job_id)  # another tenant's job is not found
        released = self.backend.jobs.redrive(job_id, time.time())
        crash_point("redrive.stored")
        self._send(released)
        job = self.get(tenant, job_id)
        log.info("job %s redriven (%d)", job_id, job.redrive_count)
        return job

    def set_max_concurrency(self, tenant: TenantId, job_id: JobId, value: int) -> Job:
        job = self.get(tenant, job_id)
        if job.status.terminal:
            raise JobFinished(job_id)
        self._send(self.backend.jobs.set_max_concurrency(job_id, value))
        return self.get(tenant, job_id)

    def backlog(self) -> Backlog:
        """Chunks not yet started and webhooks not yet delivered, counted at most once a second
        (cheap enough to ask on every request)."""
        now = time.monotonic()
        if self._backlog is None or self._backlog[0] < now - BACKLOG_TTL:
            counted = Backlog(
                self.backend.jobs.unstarted_chunks(), self.backend.outbox.undelivered()
            )
            self._backlog = (now, counted)
        return self._backlog[1]

    def _stored_chunks(self, count: int) -> None:
        """Add a job's chunks to the cached backlog: between two counts, a burst of POSTs would
        otherwise all be admitted against the first count (a second's worth past the bound)."""
        with self._backlog_lock:
            if self._backlog is not None:
                at, backlog = self._backlog
                more = dataclasses.replace(
                    backlog, unstarted_chunks=backlog.unstarted_chunks + count
                )
                self._backlog = (at, more)

    def admit(self) -> None:
        """Backpressure: raises Overloaded while the unstarted chunks or the undelivered
        webhooks are at their bound (FANOUT_MAX_UNSTARTED_CHUNKS, _UNDELIVERED_WEBHOOKS), rather
        than accept work that cannot start. Reads `backlog()` (counted at most a second ago,
        plus the chunks this process stored since)."""
        backlog, settings = self.backlog(), self.settings
        wait = settings.backpressure_retry_after
        if backlog.unstarted_chunks >= settings.max_unstarted_chunks:
            raise Overloaded(
                "chunks", backlog.unstarted_chunks, settings.max_unstarted_chunks, wait
            )
        if backlog.undelivered_webhooks >= settings.max_undelivered_webhooks:
            bound = settings.max_undelivered_webhooks
            raise Overloaded("webhooks", backlog.undelivered_webhooks, bound, wait)

    def ready(self) -> Backlog:
        """Write to the store and read it back (raises StoreUnavailable when it cannot write),
        then the backlog, counted afresh."""
        self.backend.jobs.probe(time.time())
        self._backlog = None
        return self.backlog()

    # -- the queue, for the workers -----------------------------------------------------------

    def receive(self, owner: str, max_messages: int = 1) -> Sequence[Delivery]:
        """Chunks to run, hidden from other workers for the visibility timeout."""
        timeout = self.settings.visibility_timeout
        return self.backend.queue.receive(max_messages, timeout, owner)

    def receive_dead_letters(self, owner: str, max_messages: int = 1) -> Sequence[Delivery]:
        timeout = self.settings.visibility_timeout
        return self.backend.queue.receive_dead(max_messages, timeout, owner)

    def extend(self, delivery: Delivery) -> None:
        """Keep a running chunk hidden for another visibility timeout (a worker's heartbeat)."""
        self.backend.queue.extend(delivery.receipt, self.settings.visibility_timeout)

    def hand_back(self, delivery: Delivery) -> None:
        """Make a delivery visible again at once: its worker could not finish it (the store
        failed) and will not try again."""
        self.backend.queue.release(delivery.receipt)

    def heartbeat(self, owner: str) -> None:
        """Say that the worker `owner` is alive, so the messages it holds stay its own."""
        self.backend.leases.heartbeat(owner, time.time())

    def reclaim(self, owner: str | None = None) -> int:
        """Hand back at once what the dead worker `owner` held, or with None what every worker
        silent for `owner_dead_after` seconds held (a restart after a crash, a killed
        `fanout worker`). A no-op where the queue's visibility timeout is the only lease."""
        return self.backend.leases.reclaim(owner, time.time(), self.settings.owner_dead_after)

    def _send(self, chunks: Sequence[ChunkRef]) -> None:
        """Send released chunks, unless the store already queued them in its own transaction."""
        if chunks and not self.backend.store_enqueues:
            self.backend.queue.send(chunks)

    # -- run ----------------------------------------------------------------------------------

    def process(self, delivery: Delivery) -> None:
        """Run one delivered chunk and record it. A chunk that is no longer live (done, split, or
        its job ended) is acknowledged without running."""
        with self._metered() as requests:
            recorded = self._run(delivery, requests)
        if not recorded:
            self.backend.queue.delete(delivery.receipt)

    def _metered(self) -> AbstractContextManager[Mapping[str, float]]:
        """A scope counting the requests made in it, where the backend bills by the request."""
        return self.backend.metered() if self.backend.metered is not None else nullcontext({})

    def _run(self, delivery: Delivery, requests: Mapping[str, float]) -> bool:
        """Run and record a live chunk (True); False for one that is not live any more."""
        chunk = delivery.chunk
        items = self.backend.chunks.start_chunk(chunk, time.time())
        job = self.backend.jobs.get_job(chunk.job_id) if items is not None else None
        if items is not None and job is not None:
            task = tasks.get_task(job.task)
            if task is None:
                result = runner.failed_chunk(
                    chunk.start, chunk.end, TaskNotFound(f"no task named {job.task!r}"), 0
                )
            else:
                policy = runner.RunPolicy(
                    max_attempts=task.max_attempts or job.options.max_attempts,
                    async_concurrency=self.settings.async_concurrency,
                    backoff_base=self.settings.retry_backoff_base,
                    backoff_max=self.settings.retry_backoff_max,
                )
                started = time.perf_counter()
                result = runner.run_chunk(task, chunk.start, items, job.params, policy)
                seconds = time.perf_counter() - started
                metrics.chunk_ran(task.name, seconds)
                if self._times is not None:
                    self._times.observe(task.name, seconds, chunk.size)
            self._record(delivery, dataclasses.replace(result, requests=requests))
            return True
        return False

    def process_dead_letter(self, delivery: Delivery) -> None:
        """A chunk that killed or hung its worker on every delivery: split it in two (as Lambda's
        BisectBatchOnFunctionError does) until the item responsible is alone, then fail that item
        only."""
        chunk = delivery.chunk
        if chunk.size > 1:
            self._send(self.backend.chunks.split_chunk(chunk))
            self.backend.queue.delete(delivery.receipt)
            return
        lost = WorkerLost(
            f"the worker died or hung on each of {self.settings.max_receive_count} deliveries"
        )
        count = self.settings.max_receive_count
        self._record(delivery, runner.failed_chunk(chunk.start, chunk.end, lost, count))

    def _record(self, delivery: Delivery, result: ChunkResult) -> None:
        """Record, send what that released, acknowledge the message, finalize if complete. A
        crash between any two steps leaves the message to come back, or the job to the
        reconciler: every step is safe to repeat."""
        chunk = delivery.chunk
        outcome = self.backend.chunks.record_chunk_result(chunk, result, delivery.receipt)
        crash_point("record.stored")
        if outcome.counted:
            metrics.items_recorded(result.succeeded, result.failed)
        self._send(outcome.released)
        if not self.backend.store_enqueues:
            self.backend.queue.delete(delivery.receipt)
        if outcome.complete:
            self.finalize(chunk.job_id)

    def aggregate(self, records: Sequence[Mapping[str, Any]]) -> Sequence[Counted]:
        """Fan in a batch of change records (AWS: a DynamoDB stream batch, as Lambda delivers
        it): count the chunk results first stored in it, send the chunks that frees, finalize a
        job its last count completes. Safe to repeat with the same batch: a retried batch counts
        nothing twice. A crash after counting leaves the rest to the reconciler."""
        if self.backend.fan_in is None:
            return []  # this backend counts results as it records them
        counted = self.backend.fan_in.count(records)
        crash_point("aggregate.counted")
        for each in counted:
            self._send(each.outcome.released)
        for each in counted:
            if each.outcome.complete:
                self.finalize(each.chunk.job_id)
        return counted

    def aggregate_changes(self, limit: int = 100) -> int:
        """One round of a stream poller: aggregate the next batch of each shard and move its
        checkpoint past it. A batch that fails is read again next round. Returns how many
        records were read."""
        if self.backend.changes is None:
            return 0
        read = 0
        for batch in self.backend.changes.read(limit):
            self.aggregate(batch.records)
            self.backend.changes.commit(batch)
            read += len(batch.records)
        return read

    # -- finish -------------------------------------------------------------------------------

    def finalize(self, job_id: JobId) -> bool:
        """Decide a complete job's status, run its reducer over the ordered outputs, and queue its
        completion event, exactly once (the store's claim decides the one winner)."""
        job = self.backend.jobs.get_job(job_id)
        if job is None or job.status.terminal:
            return False
        status = JobStatus.FAILED if self._over_tolerance(job) else JobStatus.SUCCEEDED
        error = (
            f"{job.failed} of {job.total} items failed, more than tolerated"
            if status is JobStatus.FAILED
            else None
        )
        value = None
        # A failed job has no result: its reducer would see a partial list (issue 10.4).
        if status is JobStatus.SUCCEEDED and job.options.reduce is not None:
            try:
                value = self._reduce(job)
            except Exception as failure:
                status = JobStatus.FAILED
                error = f"reducer {job.options.reduce!r} raised {type(failure).__name__}: {failure}"
        return self._complete(job, status, value, error)

    def _over_tolerance(self, job: Job) -> bool:
        """Step Functions' Map semantics: no tolerance given means none; either limit exceeded
        fails the job."""
        count, percentage = (
            job.options.tolerated_failure_count,
            job.options.tolerated_failure_percentage,
        )
        if count is None and percentage is None:
            return job.failed > 0
        return (count is not None and job.failed > count) or (
            percentage is not None and job.failed * 100 > percentage * job.total
        )

    def _reduce(self, job: Job) -> Any:
        reduce = tasks.get_reducer(job.options.reduce or "")
        if reduce is None:
            raise LookupError("reducer is not registered in this process")
        outputs = []
        for _, lines in self.backend.jobs.result_blocks(job.id, 0):
            for outcome in from_json(b"[" + lines.replace(b"\n", b",") + b"]"):
                if outcome["status"] == "succeeded":
                    outputs.append(outcome["output"])
        return reduce(outputs)

    def _complete(self, job: Job, status: JobStatus, value: Any, error: str | None) -> bool:
        """Write the final output (where the backend keeps one), then claim the terminal
        transition with its completion event, then announce the event. A crash between the
        steps leaves the job active, so the reconciler repeats them; the output is the same."""
        with self._metered() as requests:
            return self._finish(job, status, value, error, requests)

    def _finish(
        self,
        job: Job,
        status: JobStatus,
        value: Any,
        error: str | None,
        requests: Mapping[str, float],
    ) -> bool:
        output = None
        if self.backend.outputs is not None:
            ended = dataclasses.replace(job, status=status)
            output = self.backend.outputs.write(job.id, self.result_lines(ended, 0, None))
        crash_point("finalize.output")
        now = time.time()
        event = None
        if job.webhook_url is not None:
            event = WebhookEvent(
                id=event_id(job),
                job_id=job.id,
                url=job.webhook_url,
                secret=self._secret(job.id),
                payload=b"",
                status=DeliveryStatus.PENDING,
                attempts=0,
                next_attempt_at=now,
            )
            final = dataclasses.replace(
                job,
                status=status,
                finished_at=now,
                reduce_value=value,
                error=error,
                running=0,
                event=event,
                output=output,
            )
            payload = {
                "type": f"job.{status.value}",
                "timestamp": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
                "data": public_job(final),
            }
            # A reducer's value can overflow: null in the payload, never Infinity (not JSON).
            event = dataclasses.replace(event, payload=to_json(payload, inf_nan_mode="null"))
        claimed = self.backend.jobs.claim_completion(
            job.id, status, now, value, error, event, requests
        )
        if claimed:
            logs.job_finished(dataclasses.replace(job, status=status, finished_at=now, running=0))
            metrics.job_finished(status.value)
        crash_point("finalize.claimed")
        if claimed and event is not None:
            self._announce(event)
        return claimed

    def _announce(self, event: WebhookEvent, delay: float = 0.0) -> None:
        if self.backend.notifications is None:
            return
        try:
            self.backend.notifications.announce(Notice(event.id, event.job_id), delay)
        except Exception:
            # The event is in the outbox: the schedule delivers it once it is overdue.
            log.exception("event %s stored, but announcing it failed", event.id)

    def _secret(self, job_id: JobId) -> str:
        secret = self.backend.jobs.webhook_secret(job_id)
        assert secret is not None, "a job with a webhook URL always has its secret"
        return secret

    # -- reconcile ----------------------------------------------------------------------------

    def reconcile(self) -> None:
        """The one triage of what crashes left. Of each active job the store names (complete,
        past its deadline, or idle for `stale_after`): finalize it if complete, fail it if past
        its deadline, else send again what its window released that never started (a message
        lost between the store and the queue) and release what the window has room for."""
        now = time.time()
        for job in self.backend.reconcilable.jobs_to_reconcile(now, self.settings.stale_after):
            if job.succeeded + job.failed == job.total:
                self.finalize(job.id)
            elif job.deadline is not None and now > job.deadline:
                error = f"timed out after {job.options.timeout_seconds} s"
                self._complete(job, JobStatus.FAILED, None, error)
            else:
                self._send(self.backend.chunks.release_window(job.id))

    # -- retention ----------------------------------------------------------------------------

    def purge(self) -> int:
        """Remove ended jobs past FANOUT_RETENTION_DAYS with everything stored for them, and
        give the space back (`fanout.retention`); nothing where the store expires them itself.
        Returns how many jobs went."""
        if self.backend.retention is None:
            return 0
        return retention.purge(self.backend.retention, self.settings.retention_days)

    # -- notify -------------------------------------------------------------------------------

    def due_events(self, limit: int = 32) -> Sequence[WebhookEvent]:
        """Completion events to deliver now, each claimed for this caller: no other deliverer
        (another thread, process or server) sends the same attempt unless this one dies and
        its claim expires. Where notices announce each event, only those overdue by
        NOTICE_GRACE (a notice lost, or a retry further off than the queue can delay it)."""
        now = time.time()
        grace = 0.0 if self.backend.notifications is None else NOTICE_GRACE
        due = self.backend.outbox.due_events(now - grace, limit)
        return [claimed for event in due if (claimed := self._claim(event)) is not None]

    def _claim_lease(self) -> float:
        """Long enough for one attempt: the send's own deadline, with room to wait for a slot of
        its destination and to record it. An attempt that waits longer renews its claim
        (`confirm_claim`)."""
        return 3 * self.settings.webhook_timeout + 5.0

    def _claim(self, event: WebhookEvent) -> WebhookEvent | None:
        """The event as claimed (its `next_attempt_at` the claim's lease), or None."""
        now = time.time()
        lease_until = now + self._claim_lease()
        # A second of clock skew between hosts, as for notices.
        if not self.backend.outbox.claim_attempt(event, now + 1.0, lease_until):
            return None
        return dataclasses.replace(event, next_attempt_at=lease_until)

    def confirm_claim(self, event: WebhookEvent) -> WebhookEvent | None:
        """Called just before an attempt of a claimed event is sent: the event, still claimed
        for at least one whole attempt, or None when its claim was lost (the attempt waited for
        its destination past the lease, and another deliverer took it). A claim with less than
        an attempt's time left (plus the hosts' clock skew) is renewed first."""
        now = time.time()
        if event.next_attempt_at - now >= self.settings.webhook_timeout + CLAIM_MARGIN:
            return event
        lease_until = now + self._claim_lease()
        if not self.backend.outbox.renew_claim(event, lease_until):
            return None
        return dataclasses.replace(event, next_attempt_at=lease_until)

    def receive_notices(self, max_messages: int = 10) -> Sequence[Notice]:
        """Notices of events to deliver, where the backend announces them (else none)."""
        if self.backend.notifications is None:
            return []
        return self.backend.notifications.receive(max_messages)

    def acknowledge(self, notice: Notice) -> None:
        if self.backend.notifications is not None:
            self.backend.notifications.delete(notice.receipt)

    def notice_event(self, notice: Notice) -> WebhookEvent | None:
        """The event a notice names, if it is still pending and due and this caller claims its
        attempt (as `due_events` does); None for a duplicate or stale notice."""
        job = self.backend.jobs.get_job(notice.job_id)
        event = job.event if job is not None else None
        if (
            event is None
            or event.id != notice.event_id
            or event.status is not DeliveryStatus.PENDING
            or event.next_attempt_at > time.time() + 1.0  # a second of clock skew between hosts
        ):
            return None
        return self._claim(event)

    def record_attempt(self, event: WebhookEvent, attempt: webhooks.Attempt) -> None:
        """Record one delivery attempt of a claimed completion event (made by
        `fanout.workers.notifier`) and schedule the next. Where notices announce events, a
        retry the queue can delay that long is announced with its delay; later ones are the
        sweep's (`due_events`)."""
        retry_at = webhooks.next_attempt_at(
            attempt,
            event.attempts + 1,
            self.settings.webhook_max_attempts,
            self.settings.webhook_backoff_base,
            self.settings.webhook_backoff_max,
        )
        self.backend.outbox.record_attempt(
            event.id, time.time(), attempt.status_code, attempt.error, retry_at, attempt.delivered
        )
        metrics.webhook_attempt(attempt.delivered, retry_at is not None)
        if (
            retry_at is not None
            and not attempt.delivered
            and retry_at - time.time() <= MAX_NOTICE_DELAY
        ):
            self._announce(event, max(0.0, retry_at - time.time()))


def _problem(field: str, message: str, **more: object) -> dict[str, object]:
    """One entry of InvalidJob's errors: the field at fault, and what is wrong with it."""
    return {"field": field, **more, "message": message}
