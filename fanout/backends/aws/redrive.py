"""Redriving an ended job on DynamoDB (what a redrive means: `fanout.ports.JobStore.redrive`).

The table has no transaction over a whole job, so a redrive is a commit, then a preparation that
can be repeated, then an opening:

1. commit: one conditional update moves the job from an ended status back to queued (failed 0,
   `redrive_count` up, its completion event dropped, its window empty) and marks it
   `redriving` with the new generation. Of two redrives at once, the condition lets one in.
2. prepare: each recorded chunk with failed items is cut into runs: its failed runs are put as
   chunks to run, its succeeded runs as result items marked `carried` (which the fan-in does
   not count again), then its original result is deleted. Every chunk to run (those runs, and
   chunks that never recorded a result: a cancelled job's) gets an ordinal in a new plan,
   generation `g`, written as plan pages of their own. What the run needs (the results kept,
   the chunks to run, the plan) expires the retention after the run's new deadline
   (`fanout.backends.aws.expiry`); the job item has no expiry until the job ends again.
3. open: one conditional update points the window at plan `g`, drops the mark, and the window
   releases as on a first run.

A crash between 1 and 3 leaves the mark: the reconciler lists the job once the mark is older
than REDRIVE_GRACE, and `release_window` repeats 2 and 3 from what the table holds then. Step 2
derives every key it writes from the items it reads, and deletes an original result only after
writing its pieces, so a repeat finds either the original (and cuts it again, the same way) or
the pieces (chunks to run, carried results).
"""

from __future__ import annotations

import array
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pydantic_core import from_json, to_json

from fanout.backends.aws import expiry
from fanout.backends.aws.job_items import PLAN_PAGE
from fanout.backends.aws.table import Item, Table, chunk_sk, job_key, plan_sk, result_sk
from fanout.errors import JobNotFinished, JobNotFound, NothingToRedrive
from fanout.models import JobId, JobStatus

if TYPE_CHECKING:
    from fanout.backends.aws.store import DynamoJobStore

FAILED = re.compile(rb'\{"index":\d+,"status":"failed"')
REDRIVE_GRACE = 10.0  # a mark older than this is a redrive that crashed before opening
ENDED = {
    f":{s.value}": s.value for s in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
}
EVENT_FIELDS = (
    "event_id, event_url, event_secret, event_payload, event_status, event_attempts,"
    " event_history, next_attempt_at, due"
)


def runs(lines: list[bytes]) -> Iterator[tuple[bool, int, int]]:
    """(failed?, first, stop) of each maximal run of outcomes alike, offsets into `lines`."""
    failed = [FAILED.match(line) is not None for line in lines]
    first = 0
    for offset in range(1, len(lines) + 1):
        if offset == len(lines) or failed[offset] != failed[first]:
            yield failed[first], first, offset
            first = offset


class Redrive:
    def __init__(self, store: DynamoJobStore) -> None:
        self.store = store
        self.table: Table = store.table

    def commit(self, job_id: JobId, now: float) -> Item:
        job = self.table.get(job_key(job_id))
        if job is None:
            raise JobNotFound(job_id)
        if not JobStatus(job["status"]).terminal:
            raise JobNotFinished(f"job {job_id} is {job['status']}: redrive it once it has ended")
        if job["succeeded"] >= job["total"]:
            raise NothingToRedrive(f"every item of job {job_id} succeeded")
        generation = job.get("redrive_count", 0) + 1
        timeout = from_json(job["options"]).get("timeout_seconds")
        values: Item = {
            ":queued": JobStatus.QUEUED.value,
            ":status_id": f"{JobStatus.QUEUED.value}#{job_id}",
            ":one": "1",
            ":zero": 0,
            ":now": now,
            ":g": generation,
            ":seen": job.get("redrive_count", 0),
            ":deadline": expiry.deadline(now, timeout),
            **ENDED,
        }
        # Timeline: two redrives of one ended job read the same count; the first moves it on,
        # the second's condition fails (it reads the job again and answers 409).
        committed = self.table.update(
            job_key(job_id),
            "SET #status = :queued, status_id = :status_id, active = :one, failed = :zero,"
            " running = :zero, in_flight = :zero, next_chunk = :zero, chunk_count = :zero,"
            " redrive_count = :g, redriving = :g, updated_at = :now, deadline = :deadline"
            # Running again: the job item keeps no expiry until it ends again.
            f" REMOVE finished_at, reduce_value, #error, expires_at, {EVENT_FIELDS}",
            condition=f"#status IN ({', '.join(ENDED)})"
            " AND (attribute_not_exists(redrive_count) OR redrive_count = :seen)",
            names={"#status": "status", "#error": "error"},
            values=values,
            returns="ALL_NEW",
        )
        if committed is None:
            return self.commit(job_id, now)  # raced: the other redrive decides the answer
        return committed

    def prepare_and_open(self, job: Item) -> Item | None:
        """Steps 2 and 3; the job as opened, or None if someone else opened it first."""
        job_id, generation = JobId(job["id"]), job["redriving"]
        expires = expiry.of_running_job(job, time.time(), self.store.retention)
        chunks = self._items(job_id, "CHUNK#")
        results = {item["sk"]: item for item in self._items(job_id, "RESULT#")}
        for result in list(results.values()):
            if result["kind"] == "result" and result.get("failed"):
                results |= self._cut(job_id, result, chunks, expires)
        chunks = self._items(job_id, "CHUNK#")
        to_run = sorted(
            (c for c in chunks if c["state"] in ("ready", "running")
             and result_sk(c["start"], c["end"]) not in results),
            key=lambda c: c["start"],
        )  # fmt: skip
        self._plan(job_id, generation, to_run, expires)
        self._keep([*results.values(), *to_run], expires)
        return self.table.update(
            job_key(job_id),
            "SET plan_gen = :g, chunk_count = :count, next_chunk = :zero, in_flight = :zero,"
            " updated_at = :now REMOVE redriving",
            condition="redriving = :g",
            values={":g": generation, ":count": len(to_run), ":zero": 0, ":now": time.time()},
            returns="ALL_NEW",
        )

    def _keep(self, items: list[Item], expires: int) -> None:
        """Move the expiry of what the run again needs (the results it keeps, the chunks it
        runs) to the retention after its new deadline: a write per item, once per redrive.
        Only items still there: a cut result was deleted."""
        for item in items:
            if item.get("expires_at", 0) < expires:
                self.table.update(
                    {"pk": item["pk"], "sk": item["sk"]},
                    "SET expires_at = :expires",
                    condition="attribute_exists(sk)",
                    values={":expires": expires},
                )

    def _items(self, job_id: JobId, prefix: str) -> list[Item]:
        values = {":pk": f"JOB#{job_id}", ":prefix": prefix}
        return list(
            self.table.query("pk = :pk AND begins_with(sk, :prefix)", values, consistent=True)
        )

    def _cut(
        self, job_id: JobId, result: Item, chunks: list[Item], expires: int
    ) -> dict[str, Item]:
        """Cut a result with failed items into runs (see the module's docstring); returns the
        carried result items it put, by key."""
        start, end = result["start"], result["end"]
        lines = (result.get("lines") or self.store.blobs.get(result["lines_key"])).split(b"\n")
        original = next(c for c in chunks if c["sk"] == chunk_sk(start, end))
        inputs = from_json(self.store.chunk_input(original))
        carried: dict[str, Item] = {}
        for failed, first, stop in runs(lines):
            a, b = start + first, start + stop
            if failed:
                piece = self.store.chunk_item(job_id, a, b, to_json(inputs[first:stop]), expires)
                # Over a done original of the same range, never over a piece a preparer
                # before this one already put (and the window may have released).
                self.table.put(
                    piece,
                    "attribute_not_exists(sk) OR #state = :done",
                    names={"#state": "state"},
                    values={":done": "done"},
                )
            else:
                kept = b"\n".join(lines[first:stop])
                item = self.store.carried_result(job_id, a, b, kept, expires)
                self.table.put(item, "attribute_not_exists(sk)")
                carried[item["sk"]] = item
        self.table.delete({"pk": f"JOB#{job_id}", "sk": result["sk"]})
        return carried

    def _plan(self, job_id: JobId, generation: int, to_run: list[Item], expires: int) -> None:
        bounds = [c["start"] for c in to_run]
        ends = [c["end"] for c in to_run]
        for page, first in enumerate(range(0, max(len(to_run), 1), PLAN_PAGE)):
            # Each plan page holds its chunks' starts and ends: a redrive's chunks need not meet.
            packed = array.array(
                "q", bounds[first : first + PLAN_PAGE] + ends[first : first + PLAN_PAGE]
            )
            self.table.put(
                {
                    "pk": f"JOB#{job_id}",
                    "sk": plan_sk(generation, page),
                    "kind": "plan",
                    "starts_ends": packed.tobytes(),
                    "expires_at": expires,
                }
            )
        for ordinal, chunk in enumerate(to_run):
            self.table.update(
                {"pk": f"JOB#{job_id}", "sk": chunk["sk"]},
                "SET ordinal = :ordinal, gen = :g, #state = :ready REMOVE half",
                condition="#state IN (:ready, :running)",
                names={"#state": "state"},
                values={
                    ":ordinal": ordinal,
                    ":g": generation,
                    ":ready": "ready",
                    ":running": "running",
                },
            )
