"""Housekeeping, run periodically: the reconciler's triage of what crashes left, and the purge
of ended jobs past their retention; and, where the store expires jobs itself, deleting the
objects a removed job kept apart from it."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from fanout import retention
from fanout.models import JobId, JobStatus
from fanout.service.finishing import Finishing


class Housekeeping(Finishing):
    """Run on a timer (`reconcile_interval`, `purge_interval`) by `fanout serve`, or by a
    scheduled Lambda."""

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
                timeout = job.options.timeout_seconds
                # Without timeout_seconds, the deadline is the backend's longest run (AWS).
                error = (
                    f"timed out after {timeout} s"
                    if timeout
                    else "timed out: ran past the longest a job without timeout_seconds runs"
                )
                self._complete(job, JobStatus.FAILED, None, error)
            else:
                self._send(self.backend.chunks.release_window(job.id))

    def purge(self) -> int:
        """Remove ended jobs past FANOUT_RETENTION_DAYS with everything stored for them, and
        give the space back (`fanout.retention`); nothing where the store expires them itself.
        Returns how many jobs went."""
        if self.backend.retention is None:
            return 0
        return retention.purge(self.backend.retention, self.settings.retention_days)

    @property
    def deletes_job_objects(self) -> bool:
        """Removed jobs' objects are deleted by a change-feed poller
        (`delete_job_objects_changes`), run beside the aggregator."""
        return self.backend.job_objects_changes is not None

    def delete_job_objects(self, records: Sequence[Mapping[str, Any]]) -> Mapping[JobId, int]:
        """Delete the objects of each job whose removal `records` hold (AWS: a stream batch, as
        Lambda delivers it, with TTL's REMOVE of job items; any other record is ignored).
        Returns how many objects each such job had. Safe to repeat with the same batch;
        BackendError if any could not be deleted. Nothing where the backend keeps no objects
        apart from the store (SQLite: `purge` removes a job whole)."""
        if self.backend.job_objects is None:
            return {}
        return self.backend.job_objects.delete_removed(records)

    def delete_job_objects_changes(self, limit: int = 100) -> int:
        """One round of the deleter's poller: `delete_job_objects` over the next batch of each
        shard of its own feed (its checkpoints apart from `aggregate_changes`'), then move the
        checkpoint past it. A batch that fails is read again next round. Returns how many
        records were read."""
        feed = self.backend.job_objects_changes
        if feed is None:
            return 0
        batches = feed.read(limit)
        for batch in batches:
            self.delete_job_objects(batch.records)
            feed.commit(batch)
        return sum(len(batch.records) for batch in batches)
