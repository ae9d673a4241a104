"""The window on DynamoDB: releasing a job's chunks in input order, `max_concurrency` at a time,
from the job item's counters and its plan pages."""

from __future__ import annotations

import array
import itertools
import time

from fanout.backends.aws.chunk_items import DynamoChunkItems
from fanout.backends.aws.job_items import ACTIVE_VALUES, IS_ACTIVE, PLAN_PAGE, STATUS
from fanout.backends.aws.table import Item, job_key, plan_sk
from fanout.errors import BackendError
from fanout.models import ChunkRef, JobId, JobStatus

RELEASE_ATTEMPTS = 20


class DynamoWindow(DynamoChunkItems):
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
