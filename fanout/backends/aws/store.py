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

import array
import dataclasses
import itertools
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic_core import from_json, to_json

from fanout.backends.aws.blobs import S3Blobs
from fanout.backends.aws.redrive import REDRIVE_GRACE, Redrive, plan_sk
from fanout.backends.aws.table import (
    INLINE_LIMIT,
    Item,
    Table,
    chunk_key,
    chunk_of,
    chunk_sk,
    job_key,
    plan_key,
    result_key,
    result_sk,
)
from fanout.crashpoints import crash_point
from fanout.errors import BackendError, JobExists
from fanout.models import (
    ChunkInput,
    ChunkRef,
    ChunkResult,
    DeliveryAttempt,
    DeliveryStatus,
    EventId,
    Job,
    JobId,
    JobOptions,
    JobStatus,
    NewJob,
    Page,
    RecordOutcome,
    TenantId,
    Usage,
    WebhookEvent,
)

# An S3 PUT costs as much as 8 write units ($0.005 per 1,000 against $0.625 per million, see
# fanout.pricing), and a ranged GET more than reading 4 KB from the table: result lines up to
# 7 KB are cheaper inline in their result item, larger ones cheaper as one object per chunk.
INLINE_RESULT_LIMIT = 7 * 1024
PLAN_PAGE = 8192  # chunk boundaries a plan item holds (8 bytes each: 64 KB)
RELEASE_ATTEMPTS = 20
STATUS = {"#status": "status"}
IS_ACTIVE = "#status IN (:queued, :running)"
ACTIVE_VALUES: Item = {":queued": JobStatus.QUEUED.value, ":running": JobStatus.RUNNING.value}
# A chunk is ready (stored, maybe released), running, done (recorded) or split.
STATE = {"#state": "state"}
IS_LIVE = "#state IN (:ready, :running_chunk)"
LIVE_VALUES: Item = {":ready": "ready", ":running_chunk": "running"}
# A job item's count of each kind of request it made is the attribute "requests:<kind>".
REQUESTS = "requests:"
# The requests of each chunk that its worker does not see before the result is written: its
# message sent, received and deleted; its result put, its item marked done, its count.
CHUNK_FOLLOW_UPS = {"sqs requests": 3.0, "dynamodb write units": 3.0}
OWN_WRITE = {"dynamodb write units": 1.0}  # one write of a small item


def merged(*tallies: Mapping[str, float]) -> dict[str, float]:
    total: dict[str, float] = {}
    for tally in tallies:
        for kind, count in tally.items():
            total[kind] = total.get(kind, 0.0) + count
    return {kind: count for kind, count in total.items() if count}


def requests_attributes(*tallies: Mapping[str, float]) -> Item:
    return {f"{REQUESTS}{kind}": count for kind, count in merged(*tallies).items()}


def add_requests(requests: Mapping[str, float], names: Item, values: Item) -> list[str]:
    """`ADD` clauses adding each kind's count to the job item's, their names and values put
    into `names` and `values`."""
    clauses = []
    for i, (kind, count) in enumerate(sorted(requests.items())):
        names[f"#r{i}"], values[f":r{i}"] = f"{REQUESTS}{kind}", count
        clauses.append(f"#r{i} :r{i}")
    return clauses


def job_from_item(item: Item) -> Job:
    status = JobStatus(item["status"])
    options = from_json(item["options"])
    options["max_concurrency"] = item["max_concurrency"]  # the one place it is kept
    total, succeeded, failed = item["total"], item["succeeded"], item["failed"]
    # `running` is a counter moved by two separate writes; never show it out of bounds.
    running = 0 if status.terminal else max(0, min(item["running"], total - succeeded - failed))
    return Job(
        id=JobId(item["id"]),
        tenant=TenantId(item["tenant"]),
        task=item["task"],
        status=status,
        params=from_json(item["params"]),
        options=JobOptions(**options),
        webhook_url=item.get("webhook_url"),
        total=total,
        succeeded=succeeded,
        failed=failed,
        running=running,
        created_at=item["created_at"],
        started_at=item.get("started_at"),
        finished_at=item.get("finished_at"),
        reduce_value=from_json(item["reduce_value"]) if item.get("reduce_value") else None,
        error=item.get("error"),
        event=event_from_item(item) if "event_id" in item else None,
        usage=usage_from_item(item),
        redrive_count=item.get("redrive_count", 0),
        deadline=item.get("deadline"),
    )


def usage_from_item(item: Item) -> Usage:
    """The job item's usage counters (moved by each count of a chunk result, `fanin.py`)."""
    return Usage(
        chunks=item.get("usage_chunks", 0),
        attempts=item.get("usage_attempts", 0),
        worker_seconds=item.get("usage_seconds", 0.0),
        requests={
            name.removeprefix(REQUESTS): count
            for name, count in item.items()
            if name.startswith(REQUESTS)
        },
    )


def event_from_item(item: Item) -> WebhookEvent:
    return WebhookEvent(
        id=EventId(item["event_id"]),
        job_id=JobId(item["id"]),
        url=item["event_url"],
        secret=item["event_secret"],
        payload=item["event_payload"],
        status=DeliveryStatus(item["event_status"]),
        attempts=item["event_attempts"],
        next_attempt_at=item["next_attempt_at"],
        history=tuple(DeliveryAttempt(**attempt) for attempt in item["event_history"]),
    )


class DynamoJobStore:
    """Implements JobStore, ChunkStore and Reconcilable on the one table."""

    def __init__(self, table: Table, blobs: S3Blobs, retention_days: float) -> None:
        self.table = table
        self.blobs = blobs
        self.retention = retention_days * 86400
        # Plan pages never change (a redrive writes a new generation).
        self._plans: dict[tuple[str, int, int], list[tuple[int, int]]] = {}

    # -- jobs ---------------------------------------------------------------------------------

    def create_job(self, job: NewJob, chunks: Sequence[ChunkInput]) -> list[ChunkRef]:
        """Chunk and plan items first, the job item last: until it exists nothing refers to
        them, so a failure part-way leaves no job (and TTL removes the orphans)."""
        expires = job.created_at + (job.options.timeout_seconds or 0) + self.retention
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
                {k: v for k, v in dataclasses.asdict(job.options).items() if k != "max_concurrency"}
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
        if job.options.timeout_seconds:
            item["deadline"] = job.created_at + job.options.timeout_seconds
        if not self.table.put(item, "attribute_not_exists(pk)"):
            raise JobExists(job.id)
        return [ChunkRef(job.id, c.start, c.end) for c in chunks[:window]]

    def _chunk_items(
        self, job_id: JobId, chunks: Sequence[ChunkInput], expires: float
    ) -> list[Item]:
        """With a bucket, every chunk's input goes into one object per job (one PUT) and each
        chunk item keeps its byte range: a chunk item then stays ~150 bytes, so each write that
        moves its state costs one write unit, however large the input."""
        if self.blobs.bucket is None or not chunks:
            return [
                self._chunk_item(job_id, c.start, c.end, c.items_json, expires, ordinal=i)
                for i, c in enumerate(chunks)
            ]
        key = f"inputs/{job_id}.json"
        self.blobs.put(key, b"".join(c.items_json for c in chunks))
        items, at = [], 0
        for i, c in enumerate(chunks):
            where = {"items_key": key, "items_at": at, "items_length": len(c.items_json)}
            items.append(self._chunk_state(job_id, c.start, c.end, expires, ordinal=i, **where))
            at += len(c.items_json)
        return items

    def _chunk_item(
        self, job_id: str, start: int, end: int, items: bytes, expires: float, **extra: Any
    ) -> Item:
        """A chunk item with its input: in an object of its own when there is a bucket, else
        inline up to DynamoDB's item size."""
        item = self._chunk_state(job_id, start, end, expires, **extra)
        if self.blobs.bucket is not None or len(items) > INLINE_LIMIT:
            item["items_key"] = f"inputs/{job_id}/{start}-{end}.json"
            self.blobs.put(item["items_key"], items)
        else:
            item["items"] = items
        return item

    def _chunk_state(self, job_id: str, start: int, end: int, expires: float, **extra: Any) -> Item:
        return {
            "pk": f"JOB#{job_id}",
            "sk": chunk_sk(start, end),
            "kind": "chunk",
            "start": start,
            "end": end,
            "state": "ready",
            "expires_at": int(expires),
            **extra,
        }

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
        # Timeline: the last count's finalize, the reconciler, a timeout and a cancel may all
        # try at once; the condition lets the first through and refuses everyone after it.
        # The event is written with the transition, in the same item: one atomic write.
        values: Item = {
            ":status": status.value,
            ":status_id": f"{status.value}#{job_id}",
            ":now": finished_at,
            ":reduce_value": to_json(reduce_value).decode(),
            ":error": error,
            ":expires_at": int(finished_at + self.retention),
            **ACTIVE_VALUES,
        }
        sets = [
            "#status = :status",
            "status_id = :status_id",
            "finished_at = :now",
            "updated_at = :now",
            "reduce_value = :reduce_value",
            "#error = :error",
            "expires_at = :expires_at",
        ]
        if event is not None:
            # record_attempt knows only the event id: point it at the job first.
            self.table.put(
                {
                    "pk": f"EVENT#{event.id}",
                    "sk": "EVENT",
                    "job_id": job_id,
                    "expires_at": int(finished_at + self.retention),
                }
            )
            sets += [
                "event_id = :event_id",
                "event_url = :event_url",
                "event_secret = :event_secret",
                "event_payload = :event_payload",
                "event_status = :event_status",
                "event_attempts = :zero",
                "event_history = :no_attempts",
                "next_attempt_at = :now",
                "due = :due",  # the sparse `due` index holds pending events only
            ]
            values |= {
                ":event_id": event.id,
                ":event_url": event.url,
                ":event_secret": event.secret,
                ":event_payload": event.payload,
                ":event_status": DeliveryStatus.PENDING.value,
                ":zero": 0,
                ":no_attempts": [],
                ":due": "1",
            }
        names = {**STATUS, "#error": "error"}
        # Finalizing's requests, and this write's own unit.
        adds = add_requests(merged(requests or {}, OWN_WRITE), names, values)
        claimed = self.table.update(
            job_key(job_id),
            # ...and leave the sparse `active` index.
            f"SET {', '.join(sets)} REMOVE active ADD {', '.join(adds)}",
            condition=IS_ACTIVE,
            names=names,
            values=values,
        )
        return claimed is not None

    # -- chunks -------------------------------------------------------------------------------

    def start_chunk(self, chunk: ChunkRef, now: float) -> bytes | None:
        # Timeline: a redelivery finds the chunk running and runs it again (so does a re-sent
        # duplicate: wasted work, counted once); once it is recorded or split, the condition
        # fails and the message is just deleted.
        old = self.table.update(
            chunk_key(chunk),
            "SET #state = :running_chunk, started_at = :now",
            condition=IS_LIVE,
            names=STATE,
            values={":now": now, **LIVE_VALUES},
            returns="ALL_OLD",
        )
        if old is None:
            return None
        first_start = old["state"] == "ready"
        job = self.table.update(
            job_key(chunk.job_id),
            "SET #status = :running, status_id = :status_id, updated_at = :now,"
            " started_at = if_not_exists(started_at, :now) ADD running :items",
            condition=IS_ACTIVE,
            names=STATUS,
            values={
                ":status_id": f"{JobStatus.RUNNING.value}#{chunk.job_id}",
                ":now": now,
                ":items": chunk.size if first_start else 0,
                **ACTIVE_VALUES,
            },
        )
        if job is None:
            return None
        return self._items(old)

    def _items(self, chunk_item: Item) -> bytes:
        if "items" in chunk_item:
            return bytes(chunk_item["items"])
        if "items_at" in chunk_item:  # a range of the job's one input object
            return self.blobs.get(
                chunk_item["items_key"], chunk_item["items_at"], chunk_item["items_length"]
            )
        return self.blobs.get(chunk_item["items_key"])

    def record_chunk_result(
        self, chunk: ChunkRef, result: ChunkResult, receipt: str | None = None
    ) -> RecordOutcome:
        """Put the result item; the stream aggregator counts it. Its key is the chunk's, shared
        with a split's tombstone, so a chunk is either recorded or split, never both."""
        found = {
            item["sk"]: item
            for item in self.table.batch_get([job_key(chunk.job_id), chunk_key(chunk)])
        }
        job, live = found.get("JOB"), found.get(chunk_key(chunk)["sk"])
        if job is None or JobStatus(job["status"]).terminal or live is None:
            return RecordOutcome(counted=False)
        if live["state"] not in ("ready", "running"):
            return RecordOutcome(counted=False)
        item: Item = {
            **result_key(chunk),
            "kind": "result",
            "start": chunk.start,
            "end": chunk.end,
            "succeeded": result.succeeded,
            "failed": result.failed,
            # The aggregator frees these items from the job's running count.
            "was_running": chunk.size if live["state"] == "running" else 0,
            # ...and adds what running the chunk used to the job's usage.
            "attempts": result.attempts,
            "seconds": result.seconds,
            "requests": merged(result.requests, CHUNK_FOLLOW_UPS),
            "expires_at": int(time.time() + self.retention),
        }
        inline_limit = INLINE_LIMIT if self.blobs.bucket is None else INLINE_RESULT_LIMIT
        if len(result.lines) > inline_limit:
            # A key per attempt: two deliveries racing here must not overwrite the lines of the
            # one whose result item is put (a task may answer differently each time).
            attempt = uuid.uuid4().hex
            item["lines_key"] = f"results/{chunk.job_id}/{chunk.start}-{chunk.end}/{attempt}.jsonl"
            self.blobs.put(item["lines_key"], result.lines)
        else:
            item["lines"] = result.lines
        counted = self.table.put(item, "attribute_not_exists(sk)")
        if counted or self._recorded(chunk):
            # Done whether or not this call put the result: a crash between the two writes
            # must not leave a recorded chunk runnable.
            # A chunk with failed items keeps its input (inline; an S3 range stays anyway): a
            # redrive runs those items again.
            drop = " REMOVE #items" if result.failed == 0 else ""
            self.table.update(
                chunk_key(chunk),
                f"SET #state = :done{drop}",
                condition=IS_LIVE,
                names={**STATE, "#items": "items"} if drop else STATE,
                values={":done": "done", **LIVE_VALUES},
            )
        return RecordOutcome(counted=counted)

    def _recorded(self, chunk: ChunkRef) -> bool:
        existing = self.table.get(result_key(chunk))
        return existing is not None and existing["kind"] == "result"

    def split_chunk(self, chunk: ChunkRef) -> list[ChunkRef]:
        """Tombstone the parent's result key, write the halves, then mark the parent split: each
        step is safe to repeat, so a dead letter redelivered after a crash finishes the split."""
        if chunk.size < 2:
            return []
        job = self.table.get(job_key(chunk.job_id))
        if job is None or JobStatus(job["status"]).terminal:
            return []
        expires = time.time() + self.retention
        tombstone = {
            **result_key(chunk),
            "kind": "split",
            "start": chunk.start,
            "end": chunk.end,
            "expires_at": int(expires),
        }
        if not self.table.put(tombstone, "attribute_not_exists(sk)"):
            existing = self.table.get(result_key(chunk))
            if existing is None or existing["kind"] != "split":
                return []  # recorded first
        parent = self.table.get(chunk_key(chunk))
        if parent is None or parent["state"] not in ("ready", "running"):
            return []  # split already
        items = from_json(self._items(parent))
        middle = chunk.size // 2
        halves = [
            (ChunkRef(chunk.job_id, chunk.start, chunk.start + middle), items[:middle]),
            (ChunkRef(chunk.job_id, chunk.start + middle, chunk.end), items[middle:]),
        ]
        for half, part in halves:
            half_item = self._chunk_item(
                chunk.job_id, half.start, half.end, to_json(part), expires, half=True
            )
            # Never overwrite a half that a reconciler may already have sent and run.
            self.table.put(half_item, "attribute_not_exists(sk)")
        old = self.table.update(
            chunk_key(chunk),
            "SET #state = :split REMOVE #items",
            condition=IS_LIVE,
            names={**STATE, "#items": "items"},
            values={":split": "split", **LIVE_VALUES},
            returns="ALL_OLD",
        )
        if old is None:
            return []
        self.table.update(
            job_key(chunk.job_id),
            "SET updated_at = :now ADD in_flight :one, running :freed",
            values={
                ":now": time.time(),
                ":one": 1,  # two halves in flight where the parent was
                ":freed": -chunk.size if old["state"] == "running" else 0,
            },
        )
        return [half for half, _ in halves]

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

    def release(self, job: Item) -> list[ChunkRef]:
        """Release original chunks in input order until the window is full, from a job item
        just read. Two releasers that read the same `next_chunk` race on the condition: the
        first moves it on, the second reads the job again and sees the room that is left."""
        for _ in range(RELEASE_ATTEMPTS):
            room = min(
                job["max_concurrency"] - job["in_flight"], job["chunk_count"] - job["next_chunk"]
            )
            if room <= 0 or JobStatus(job["status"]).terminal:
                return []
            seen = job["next_chunk"]
            moved = self.table.update(
                job_key(job["id"]),
                "SET next_chunk = :to, updated_at = :now ADD in_flight :room",
                condition=f"{IS_ACTIVE} AND next_chunk = :seen",
                names=STATUS,
                values={
                    ":to": seen + room,
                    ":seen": seen,
                    ":room": room,
                    ":now": time.time(),
                    **ACTIVE_VALUES,
                },
            )
            if moved is not None:
                return self._planned(JobId(job["id"]), job.get("plan_gen", 0), seen, seen + room)
            again = self.table.get(job_key(job["id"]))
            if again is None:
                return []
            job = again
        raise BackendError(f"releasing chunks of job {job['id']} lost {RELEASE_ATTEMPTS} races")

    def _planned(self, job_id: JobId, generation: int, first: int, stop: int) -> list[ChunkRef]:
        """The chunks of plan `generation` (0: the original chunks; then each redrive's) with
        ordinals `first` to `stop` (exclusive), from its plan items."""
        refs = []
        for ordinal in range(first, stop):
            page, offset = divmod(ordinal, PLAN_PAGE)
            start, end = self._plan(job_id, generation, page)[offset]
            refs.append(ChunkRef(job_id, start, end))
        return refs

    def _plan(self, job_id: JobId, generation: int, page: int) -> list[tuple[int, int]]:
        ranges = self._plans.get((job_id, generation, page))
        if ranges is None:
            item = self.table.get({"pk": f"JOB#{job_id}", "sk": plan_sk(generation, page)}, False)
            if item is None:
                raise BackendError(f"plan page {page} of job {job_id} is missing")
            if "bounds" in item:  # the original chunks meet: each one's end is the next's start
                bounds = array.array("q", item["bounds"]).tolist()
                ranges = list(itertools.pairwise(bounds))
            else:  # a redrive's chunks need not: their starts, then their ends
                packed = array.array("q", item["starts_ends"]).tolist()
                half = len(packed) // 2
                ranges = list(zip(packed[:half], packed[half:], strict=True))
            if len(self._plans) > 4096:
                self._plans.clear()
            self._plans[(job_id, generation, page)] = ranges
        return ranges

    # -- redrive ------------------------------------------------------------------------------

    def redrive(self, job_id: JobId, now: float) -> list[ChunkRef]:
        """See `fanout.backends.aws.redrive` for the steps and why a crash between them is safe."""
        redrive = Redrive(self)
        committed = redrive.commit(job_id, now)
        crash_point("redrive.committed")
        opened = redrive.prepare_and_open(committed)
        return [] if opened is None else self.release(opened)

    def chunk_input(self, chunk_item: Item) -> bytes:
        return self._items(chunk_item)

    def chunk_item(self, job_id: str, start: int, end: int, items: bytes, expires: float) -> Item:
        return self._chunk_item(job_id, start, end, items, expires)

    def carried_result(self, job_id: JobId, start: int, end: int, lines: bytes) -> Item:
        """A result a redrive keeps from an earlier run: `carried`, so it is not counted again."""
        item: Item = {
            "pk": f"JOB#{job_id}",
            "sk": result_sk(start, end),
            "kind": "result",
            "carried": True,
            "start": start,
            "end": end,
            "succeeded": end - start,
            "failed": 0,
            "expires_at": int(time.time() + self.retention),
        }
        inline_limit = INLINE_LIMIT if self.blobs.bucket is None else INLINE_RESULT_LIMIT
        if len(lines) > inline_limit:
            item["lines_key"] = f"results/{job_id}/{start}-{end}/carried.jsonl"
            self.blobs.put(item["lines_key"], lines)
        else:
            item["lines"] = lines
        return item

    # -- reconciler ---------------------------------------------------------------------------

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
