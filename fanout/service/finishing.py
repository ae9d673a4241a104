"""Finishing a job, exactly once: its status against the failure tolerance, its reducer over
the ordered outputs, its final output, and its completion event (stored, then announced)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from msgspec import structs
from pydantic_core import from_json, to_json

from fanout import logs, metrics, tasks
from fanout.crashpoints import crash_point
from fanout.models import DeliveryStatus, EventId, Job, JobId, JobStatus, WebhookEvent
from fanout.service.reading import Reading
from fanout.views import public_job


def event_id(job: Job) -> EventId:
    """The completion event's id (the `webhook-id`): one per run, a redrive's runs counted."""
    suffix = f"_{job.redrive_count}" if job.redrive_count else ""
    return EventId(f"evt_{job.id}{suffix}")


class Finishing(Reading):
    """The end of a job; its final output is the result lines `Reading` gives."""

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
            ended = structs.replace(job, status=status)
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
            final = structs.replace(
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
            event = structs.replace(event, payload=to_json(payload, inf_nan_mode="null"))
        claimed = self.backend.jobs.claim_completion(
            job.id, status, now, value, error, event, requests
        )
        if claimed:
            logs.job_finished(structs.replace(job, status=status, finished_at=now, running=0))
            metrics.job_finished(status.value)
        crash_point("finalize.claimed")
        if claimed and event is not None:
            self._announce(event)
        return claimed

    def _secret(self, job_id: JobId) -> str:
        secret = self.backend.jobs.webhook_secret(job_id)
        assert secret is not None, "a job with a webhook URL always has its secret"
        return secret
