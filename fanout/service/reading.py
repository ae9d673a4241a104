"""Reading jobs back: one job, a page of them, and their outcomes in input order."""

from __future__ import annotations

from collections.abc import Iterator

from msgspec import structs

from fanout import results
from fanout.errors import JobNotFound
from fanout.models import Job, JobId, JobStatus, Page, TenantId
from fanout.service.base import ServiceBase


class Reading(ServiceBase):
    """A tenant's jobs and their outcomes; another tenant's job is not found."""

    def get(self, tenant: TenantId, job_id: JobId) -> Job:
        job = self.backend.jobs.get_job(job_id, tenant)
        if job is None:
            raise JobNotFound(job_id)
        return self._with_output(job)

    def list(
        self, tenant: TenantId, status: JobStatus | None, cursor: str | None, limit: int
    ) -> Page:
        page = self.backend.jobs.list_jobs(tenant, status, cursor, limit)
        return structs.replace(page, items=[self._with_output(job) for job in page.items])

    def _with_output(self, job: Job) -> Job:
        """A terminal job's output location: it was written before the job became terminal."""
        if self.backend.outputs is None or not job.status.terminal:
            return job
        return structs.replace(job, output=self.backend.outputs.location(job.id))

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
