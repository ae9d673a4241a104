"""Jobs on DynamoDB (the `JobStore` port but for its completion and redrive): creating one with
its chunk and plan items, reading jobs and their results back, resizing a window, counting the
backlog."""

from __future__ import annotations

import array
import time
from collections.abc import Iterator, Sequence

from msgspec import structs
from pydantic_core import from_json, to_json

from fanout.backends.aws import expiry
from fanout.backends.aws.job_items import (
    ACTIVE_VALUES,
    IS_ACTIVE,
    OWN_WRITE,
    PLAN_PAGE,
    STATUS,
    job_from_item,
    requests_attributes,
)
from fanout.backends.aws.table import Item, job_key, plan_key, result_sk
from fanout.backends.aws.window import DynamoWindow
from fanout.errors import JobExists
from fanout.models import ChunkInput, ChunkRef, Job, JobId, JobStatus, NewJob, Page, TenantId


class DynamoJobs(DynamoWindow):
    def create_job(self, job: NewJob, chunks: Sequence[ChunkInput]) -> list[ChunkRef]:
        """Chunk and plan items first, the job item last: until it exists nothing refers to
        them, so a failure part-way leaves no job (and TTL removes the orphans)."""
        ends_by = expiry.deadline(job.created_at, job.options.timeout_seconds)
        expires = ends_by + self.retention  # nothing the job needs goes before it ends
        self.table.batch_write(self._chunk_items(job.id, chunks, expires))
        bounds = [c.start for c in chunks] + [job.total]
        self.table.batch_write(
            {
                **plan_key(job.id, page),
                "kind": "plan",
                "bounds": array.array("q", bounds[first : first + PLAN_PAGE + 1]).tobytes(),
                "expires_at": int(expires),
            }
            for page, first in enumerate(range(0, max(len(chunks), 1), PLAN_PAGE))
        )
        window = min(job.options.max_concurrency, len(chunks))
        item: Item = {
            **job_key(job.id),
            "kind": "job",
            "id": job.id,
            "tenant": job.tenant,
            "task": job.task,
            "status": JobStatus.QUEUED.value,
            "status_id": f"{JobStatus.QUEUED.value}#{job.id}",
            "active": "1",
            "params": to_json(job.params).decode(),
            "options": to_json(
                {k: v for k, v in structs.asdict(job.options).items() if k != "max_concurrency"}
            ).decode(),
            "max_concurrency": job.options.max_concurrency,
            "total": job.total,
            "succeeded": 0,
            "failed": 0,
            "running": 0,
            "in_flight": window,
            "next_chunk": window,
            "chunk_count": len(chunks),
            "created_at": job.created_at,
            "updated_at": job.created_at,
        }
        # What storing the job took, and the put of this item (one write unit, a small item).
        item |= requests_attributes(job.requests, OWN_WRITE)
        if job.webhook is not None:
            item |= {"webhook_url": job.webhook.url, "webhook_secret": job.webhook.secret}
        item["deadline"] = ends_by
        if not self.table.put(item, "attribute_not_exists(pk)"):
            raise JobExists(job.id)
        return [ChunkRef(job.id, c.start, c.end) for c in chunks[:window]]

    def get_job(self, job_id: JobId, tenant: TenantId | None = None) -> Job | None:
        item = self.table.get(job_key(job_id))
        if item is None or (tenant is not None and item["tenant"] != tenant):
            return None
        return job_from_item(item)

    def list_jobs(
        self, tenant: TenantId, status: JobStatus | None, cursor: str | None, limit: int
    ) -> Page:
        """Newest first: job ids sort by creation time. The `by_tenant_status` index sorts a
        tenant's jobs by `<status>#<id>`, so one status is one contiguous range."""
        values: Item = {":tenant": tenant}
        if status is None:
            index, condition = "by_tenant", "tenant = :tenant"
            if cursor is not None:
                condition += " AND id < :cursor"
                values[":cursor"] = cursor
        else:
            index = "by_tenant_status"
            values[":low"] = f"{status.value}#"
            values[":high"] = f"{status.value}#{cursor}" if cursor else f"{status.value}$"
            condition = "tenant = :tenant AND status_id BETWEEN :low AND :high"
        found = list(
            self.table.query(condition, values, index=index, forward=False, limit=limit + 2)
        )
        # The index holds keys only (bootstrap.PROJECTIONS): the job's id is in its `pk`.
        ids = [JobId(str(key["pk"]).removeprefix("JOB#")) for key in found]
        if cursor is not None and status is not None:
            ids = [job_id for job_id in ids if job_id != cursor]
        ids = ids[: limit + 1]
        next_cursor = ids[limit - 1] if len(ids) > limit else None
        return Page([job_from_item(item) for item in self._jobs(ids[:limit])], next_cursor)

    def _jobs(self, ids: list[JobId]) -> list[Item]:
        """The job items, in the order of `ids` (one BatchGetItem per 100)."""
        by_id = {item["id"]: item for item in self.table.batch_get([job_key(i) for i in ids])}
        return [by_id[job_id] for job_id in ids if job_id in by_id]

    def set_max_concurrency(self, job_id: JobId, max_concurrency: int) -> list[ChunkRef]:
        item = self.table.update(
            job_key(job_id),
            "SET max_concurrency = :window, updated_at = :now",
            condition=IS_ACTIVE,
            names=STATUS,
            values={":window": max_concurrency, ":now": time.time(), **ACTIVE_VALUES},
            returns="ALL_NEW",
        )
        return [] if item is None else self.release(item)

    def unstarted_chunks(self) -> int:
        """From the active jobs' items (the sparse `active` index, one query): chunks not yet
        released, and released ones not yet counted. An upper bound: the job item does not
        count its running chunks apart from the released ones."""
        return sum(
            max(0, job["chunk_count"] - job["next_chunk"] + job["in_flight"])
            for job in self.table.query("active = :one", {":one": "1"}, index="active")
        )

    def probe(self, now: float) -> None:
        self.table.put({"pk": "PROBE", "sk": "PROBE", "at": now, "expires_at": int(now + 3600)})

    def result_blocks(self, job_id: JobId, start: int) -> Iterator[tuple[int, bytes]]:
        """Results sort by first item; the chunk holding item `start` begins at most
        `chunk_size - 1` items before it, so the query starts there."""
        job = self.table.get(job_key(job_id))
        if job is None:
            return
        size = from_json(job["options"])["chunk_size"] or job["total"]
        values = {
            ":pk": f"JOB#{job_id}",
            ":low": result_sk(max(0, start - size + 1), 0),
            ":high": "RESULT$",  # just after every "RESULT#..." key
        }
        for item in self.table.query(
            "pk = :pk AND sk BETWEEN :low AND :high", values, consistent=True, page_size=64
        ):
            if item["kind"] == "result" and item["end"] > start:
                lines = item.get("lines")
                yield (
                    item["start"],
                    lines if lines is not None else self.blobs.get(item["lines_key"]),
                )

    def webhook_secret(self, job_id: JobId) -> str | None:
        item = self.table.get(job_key(job_id))
        return None if item is None else item.get("webhook_secret")
