"""Running chunks, for the workers: the queue's deliveries and leases, running a chunk and
recording its result, dead letters bisected to the poison item, and fan-in from a change feed
where recording does not count."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from msgspec import structs

from fanout import metrics, runner, tasks
from fanout.crashpoints import crash_point
from fanout.models import ChunkResult, Counted, Delivery
from fanout.service.finishing import Finishing


class WorkerLost(Exception):
    """The item's worker process died or hung on every delivery."""


class TaskNotFound(Exception):
    """The worker has no task of this name (its module is not in FANOUT_TASKS)."""


class Running(Finishing):
    """What the workers call; a recorded last chunk finalizes its job (`Finishing`)."""

    def receive(self, owner: str, max_messages: int = 1) -> Sequence[Delivery]:
        """Chunks to run, hidden from other workers for the visibility timeout."""
        timeout = self.settings.visibility_timeout
        return self.backend.queue.receive(max_messages, timeout, owner)

    def receive_dead_letters(self, owner: str, max_messages: int = 1) -> Sequence[Delivery]:
        timeout = self.settings.visibility_timeout
        return self.backend.queue.receive_dead(max_messages, timeout, owner)

    def extend(self, delivery: Delivery) -> None:
        """Keep a running chunk hidden for another visibility timeout (a worker's heartbeat)."""
        self.backend.queue.extend(delivery.receipt, self.settings.visibility_timeout)

    def hand_back(self, delivery: Delivery) -> None:
        """Make a delivery visible again at once: its worker could not finish it (the store
        failed) and will not try again."""
        self.backend.queue.release(delivery.receipt)

    def heartbeat(self, owner: str) -> None:
        """Say that the worker `owner` is alive, so the messages it holds stay its own."""
        self.backend.leases.heartbeat(owner, time.time())

    def reclaim(self, owner: str | None = None) -> int:
        """Hand back at once what the dead worker `owner` held, or with None what every worker
        silent for `owner_dead_after` seconds held (a restart after a crash, a killed
        `fanout worker`). A no-op where the queue's visibility timeout is the only lease."""
        return self.backend.leases.reclaim(owner, time.time(), self.settings.owner_dead_after)

    def process(self, delivery: Delivery) -> None:
        """Run one delivered chunk and record it. A chunk that is no longer live (done, split, or
        its job ended) is acknowledged without running."""
        with self._metered() as requests:
            recorded = self._run(delivery, requests)
        if not recorded:
            self.backend.queue.delete(delivery.receipt)

    def _run(self, delivery: Delivery, requests: Mapping[str, float]) -> bool:
        """Run and record a live chunk (True); False for one that is not live any more."""
        chunk = delivery.chunk
        items = self.backend.chunks.start_chunk(chunk, time.time())
        job = self.backend.jobs.get_job(chunk.job_id) if items is not None else None
        if items is not None and job is not None:
            task = tasks.get_task(job.task)
            if task is None:
                result = runner.failed_chunk(
                    chunk.start, chunk.end, TaskNotFound(f"no task named {job.task!r}"), 0
                )
            else:
                policy = runner.RunPolicy(
                    max_attempts=task.max_attempts or job.options.max_attempts,
                    async_concurrency=self.settings.async_concurrency,
                    backoff_base=self.settings.retry_backoff_base,
                    backoff_max=self.settings.retry_backoff_max,
                )
                started = time.perf_counter()
                result = runner.run_chunk(task, chunk.start, items, job.params, policy)
                seconds = time.perf_counter() - started
                metrics.chunk_ran(task.name, seconds)
                if self._times is not None:
                    self._times.observe(task.name, seconds, chunk.size)
            self._record(delivery, structs.replace(result, requests=requests))
            return True
        return False

    def process_dead_letter(self, delivery: Delivery) -> None:
        """A chunk that killed or hung its worker on every delivery: split it in two (as Lambda's
        BisectBatchOnFunctionError does) until the item responsible is alone, then fail that item
        only."""
        chunk = delivery.chunk
        if chunk.size > 1:
            self._send(self.backend.chunks.split_chunk(chunk))
            self.backend.queue.delete(delivery.receipt)
            return
        lost = WorkerLost(
            f"the worker died or hung on each of {self.settings.max_receive_count} deliveries"
        )
        count = self.settings.max_receive_count
        self._record(delivery, runner.failed_chunk(chunk.start, chunk.end, lost, count))

    def _record(self, delivery: Delivery, result: ChunkResult) -> None:
        """Record, send what that released, acknowledge the message, finalize if complete. A
        crash between any two steps leaves the message to come back, or the job to the
        reconciler: every step is safe to repeat."""
        chunk = delivery.chunk
        outcome = self.backend.chunks.record_chunk_result(chunk, result, delivery.receipt)
        crash_point("record.stored")
        if outcome.counted:
            metrics.items_recorded(result.succeeded, result.failed)
        self._send(outcome.released)
        if not self.backend.store_enqueues:
            self.backend.queue.delete(delivery.receipt)
        if outcome.complete:
            self.finalize(chunk.job_id)

    def aggregate(self, records: Sequence[Mapping[str, Any]]) -> Sequence[Counted]:
        """Fan in a batch of change records (AWS: a DynamoDB stream batch, as Lambda delivers
        it): count the chunk results first stored in it, send the chunks that frees, finalize a
        job its last count completes. Safe to repeat with the same batch: a retried batch counts
        nothing twice. A crash after counting leaves the rest to the reconciler."""
        if self.backend.fan_in is None:
            return []  # this backend counts results as it records them
        counted = self.backend.fan_in.count(records)
        crash_point("aggregate.counted")
        for each in counted:
            self._send(each.outcome.released)
        for each in counted:
            if each.outcome.complete:
                self.finalize(each.chunk.job_id)
        return counted

    def aggregate_changes(self, limit: int = 100) -> int:
        """One round of a stream poller: aggregate the next batch of each shard and move its
        checkpoint past it. A batch that fails is read again next round. Returns how many
        records were read."""
        if self.backend.changes is None:
            return 0
        batches = self.backend.changes.read(limit)
        for batch in batches:
            self.aggregate(batch.records)
            self.backend.changes.commit(batch)
        return sum(len(batch.records) for batch in batches)
