"""The job and chunk stores on DynamoDB.

Recording a chunk result only puts its item; the stream aggregator (`fanin.py`) counts it. The
job item carries the window as counters: `next_chunk` (the first original chunk not yet
released, in input order), `in_flight` (released and not yet counted) and `max_concurrency`.
Split halves are released when they are made, outside `next_chunk`.

With a bucket, chunk inputs live in S3 (one object per job, a byte range per chunk) and result
lines over a few KB too (one object per chunk), so the items whose state changes stay small and
each of those writes costs one write unit.
"""

from __future__ import annotations

import time

from fanout.backends.aws.chunks import DynamoChunks
from fanout.backends.aws.completion import DynamoCompletion
from fanout.backends.aws.job_items import ACTIVE_VALUES, IS_ACTIVE, STATUS, job_from_item
from fanout.backends.aws.jobs import DynamoJobs
from fanout.backends.aws.redrive import REDRIVE_GRACE, Redrive
from fanout.backends.aws.table import chunk_of, job_key
from fanout.crashpoints import crash_point
from fanout.models import ChunkRef, Job, JobId, JobStatus


class DynamoJobStore(DynamoJobs, DynamoCompletion, DynamoChunks):
    """Implements JobStore, ChunkStore and Reconcilable on the one table: the parts above, and
    what needs the whole store (a redrive, and the reconciler's triage)."""

    def release_window(self, job_id: JobId) -> list[ChunkRef]:
        """Every in-flight chunk again, and what the window has room for. The in-flight count is
        corrected from the chunk items: a crash between two writes can leave it off by one."""
        job = self.table.get(job_key(job_id))
        if job is None or JobStatus(job["status"]).terminal:
            return []
        if job.get("redriving") is not None:  # a redrive that crashed before it opened
            opened = Redrive(self).prepare_and_open(job)
            return [] if opened is None else self.release(opened)
        chunks = self.table.query(
            "pk = :pk AND begins_with(sk, :chunk)",
            {":pk": f"JOB#{job_id}", ":chunk": "CHUNK#"},
            consistent=True,
        )
        released = [
            c
            for c in chunks
            if c["state"] in ("ready", "running")
            and (
                c.get("half")
                or (
                    c.get("gen", 0) == job.get("plan_gen", 0)
                    and c.get("ordinal", job["next_chunk"]) < job["next_chunk"]
                )
            )
        ]
        # A running chunk's message is deleted only once it is recorded: never lost. A ready
        # one's may have been (a crash between the release and the send): send it again.
        in_flight = [chunk_of(c) for c in released]
        unstarted = [chunk_of(c) for c in released if c["state"] == "ready"]
        corrected = self.table.update(
            job_key(job_id),
            "SET in_flight = :in_flight, updated_at = :now",
            condition=f"{IS_ACTIVE} AND next_chunk = :seen",
            names=STATUS,
            values={
                ":in_flight": len(in_flight),
                ":now": time.time(),
                ":seen": job["next_chunk"],
                **ACTIVE_VALUES,
            },
            returns="ALL_NEW",
        )
        return unstarted + ([] if corrected is None else self.release(corrected))

    def redrive(self, job_id: JobId, now: float) -> list[ChunkRef]:
        """See `fanout.backends.aws.redrive` for the steps and why a crash between them is safe."""
        redrive = Redrive(self)
        committed = redrive.commit(job_id, now)
        crash_point("redrive.committed")
        opened = redrive.prepare_and_open(committed)
        return [] if opened is None else self.release(opened)

    def jobs_to_reconcile(self, now: float, stale_after: float) -> list[Job]:
        """From the sparse `active` index, which holds non-terminal jobs only."""
        jobs = []
        for item in self.table.query("active = :one", {":one": "1"}, index="active"):
            job = job_from_item(item)
            complete = job.succeeded + job.failed == job.total
            late = item.get("deadline") is not None and item["deadline"] < now
            # A redrive still marked after REDRIVE_GRACE crashed before it opened.
            stuck = item.get("redriving") is not None and item["updated_at"] < now - REDRIVE_GRACE
            if complete or late or stuck or item["updated_at"] < now - stale_after:
                jobs.append(job)
        return jobs
