"""Housekeeping, run periodically: the reconciler's triage of what crashes left, and the purge
of ended jobs past their retention."""

from __future__ import annotations

import time

from fanout import retention
from fanout.models import JobStatus
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
