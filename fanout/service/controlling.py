"""Changing a job while it runs (cancel, redrive, its window's size), and admission: the
backlog that backpressure and readiness read."""

from __future__ import annotations

import time

from msgspec import structs

from fanout.crashpoints import crash_point
from fanout.errors import JobFinished, Overloaded
from fanout.models import Backlog, Job, JobId, JobStatus, TenantId
from fanout.service.base import log
from fanout.service.finishing import Finishing

BACKLOG_TTL = 1.0  # seconds a backlog count is reused: it is asked on every POST
# Seconds a count older than the TTL still answers while another thread counts afresh. Every
# POST of the moment used to count again, each through a thread: under `python -m bench load`
# one POST in ten waited 55-210 ms there, once a second.
BACKLOG_STALE = 5.0


class Controlling(Finishing):
    """A client's changes to its job (a cancel finishes it: `Finishing`) and the service's
    admission of new work."""

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
        (cheap enough to ask on every request), by one thread at a time: while one counts, the
        others get the last count, unless it is older than BACKLOG_STALE (then they wait for
        the new one)."""
        now = time.monotonic()
        last = self._backlog
        if last is not None and last[0] >= now - BACKLOG_TTL:
            return last[1]
        usable = last is not None and last[0] >= now - BACKLOG_STALE
        if not self._counting.acquire(blocking=not usable):
            assert last is not None  # usable
            return last[1]
        try:
            last = self._backlog  # a thread this one waited for may have just counted
            if last is not None and last[0] >= time.monotonic() - BACKLOG_TTL:
                return last[1]
            started = time.monotonic()
            counted = Backlog(
                self.backend.jobs.unstarted_chunks(), self.backend.outbox.undelivered()
            )
            self._backlog = (started, counted)
            return counted
        finally:
            self._counting.release()

    def backlog_counted(self) -> bool:
        """Whether `backlog()` (so `admit()`) answers now without reading the store: it counted
        less than BACKLOG_TTL ago; or the count is less than BACKLOG_STALE old and someone else
        is counting afresh. The first caller to find it older than the TTL is answered False
        and so takes that on (it admits through a thread, which counts); for BACKLOG_TTL after,
        everyone else is answered True. An event loop can so ask inline, and one of its
        requests a second, not every one until a thread has started counting, waits for a
        count (under `python -m bench load`, one POST in ten waited 18-113 ms there). A claim
        that never counts (its request went away first) lapses after BACKLOG_TTL."""
        last, now = self._backlog, time.monotonic()
        if last is None:
            return False
        if last[0] >= now - BACKLOG_TTL:
            return True
        if last[0] < now - BACKLOG_STALE:
            return False
        with self._backlog_lock:
            if self._counting.locked() or self._recount_claimed >= now - BACKLOG_TTL:
                return True
            self._recount_claimed = now
        return False

    def _stored_chunks(self, count: int) -> None:
        """Add a job's chunks to the cached backlog: between two counts, a burst of POSTs would
        otherwise all be admitted against the first count (a second's worth past the bound)."""
        with self._backlog_lock:
            if self._backlog is not None:
                at, backlog = self._backlog
                more = structs.replace(backlog, unstarted_chunks=backlog.unstarted_chunks + count)
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
