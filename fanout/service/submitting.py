"""Submitting a job: taken in, chunked to the task's measured speed, stored durably (once per
idempotency key), its first window released."""

from __future__ import annotations

import time
from collections.abc import Callable

from msgspec import structs

from fanout import chunking, logs, metrics, tasks, webhooks
from fanout.crashpoints import crash_point
from fanout.errors import JobExists
from fanout.intake import BATCH
from fanout.models import Job, JobId, JobOptions, NewJob, TenantId, Webhook
from fanout.service.base import log
from fanout.service.controlling import Controlling
from fanout.service.submission import JobRequest, Submission, new_job_id
from fanout.service.taking_in import TakingIn

# Seconds a task's measured time per item is reused before it is read again: a read is one
# indexed row, and a task's first (cold) measurement is replaced half a second after it is
# written (`chunking.SETTLE`), so a new task's jobs are sized by the warm one a second later.
STATS_TTL = 1.0

# Renders the response an idempotent submit stores and replays: from the job, and the webhook
# secret generated for it (None if the client gave one).
Render = Callable[[Job, "str | None"], bytes]


class Submitting(TakingIn, Controlling):
    """Builds on taking in, and on control for the backlog a stored job adds to (an empty
    job is finalized at once, `Finishing` through `Controlling`)."""

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
            options=structs.replace(options, chunk_size=size),
            webhook=Webhook(request.webhook_url, secret)
            if request.webhook_url and secret
            else None,
            total=intake.total,
            created_at=time.time(),
        )
        with self._metered() as requests:
            released = self.backend.jobs.create_job(structs.replace(new, requests=requests), chunks)
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
        seconds (a submit should not cost a read more). A task not measured yet is read again
        at each submit: its first chunk's time is written at once (`chunking.TaskTimes`), and
        every job sized by the default until then is cut into chunks for 1 ms items (under a
        load of small jobs of a fast task, thousands of needless chunks a second)."""
        if self.backend.stats is None:
            return None
        now = time.monotonic()
        read_at, value = self._measured.get(task, (-STATS_TTL, None))
        if value is None or now - read_at >= STATS_TTL:
            value = self.backend.stats.seconds_per_item(task)
            self._measured[task] = (now, value)
        return value
