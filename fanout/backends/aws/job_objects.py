"""A job's S3 objects, deleted when its job item leaves the table (TTL, or a delete).

The job item is the last of a job's items to go (`fanout.backends.aws.expiry`: the retention
after the job ends, and no expiry at all while it runs or runs again after a redrive), and
nothing reads a job's objects without it. So its REMOVE record on the table's stream is when
the job's objects may go: an S3 lifecycle age cannot know it (a job may run 14 days, and each
redrive adds up to 14 more), and the bucket's lifecycle rule is only a backstop.

Where a job's objects are (the writers: `chunk_items.py`, `chunks.py`, `outputs.py`):

| object | key |
| --- | --- |
| every chunk's input, one object | `inputs/<id>.json` |
| a split half's or a redriven run's input | `inputs/<id>/<start>-<end>.json` |
| result lines over a few KB | `results/<id>/<start>-<end>/<attempt or carried>.jsonl` |
| the final output | `outputs/<id>.jsonl` |

The two single objects are deleted by their exact keys, the rest by listing the two prefixes,
each ending in `/`: job `abc`'s `inputs/abc/` is not a prefix of job `abcd`'s `inputs/abcd/`.
Uploads (`uploads/`) and input files (`jobs/`) belong to no job id; their own lifecycle rules
expire them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fanout.backends.aws.blobs import S3Blobs
from fanout.backends.aws.clients import translated
from fanout.errors import BackendError
from fanout.models import JobId

log = logging.getLogger("fanout.aws")
# The deleter's own stream checkpoints (pk STREAM#job-objects, `streams.py`), for its poller.
CONSUMER = "job-objects"
# ListObjectsV2 returns at most 1,000 keys a page, and DeleteObjects takes at most 1,000 keys
# (https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html).
BATCH = 1000
# Job ids are hex (`fanout.service.submission.new_job_id`). One with a `/` would have keys
# under another job's prefixes, so a removed item naming one deletes nothing.
JOB_ID = re.compile(r"[0-9A-Za-z_-]+")


def single_keys(job_id: JobId) -> list[str]:
    return [f"inputs/{job_id}.json", f"outputs/{job_id}.jsonl"]


def prefixes(job_id: JobId) -> list[str]:
    return [f"inputs/{job_id}/", f"results/{job_id}/"]


def removed_jobs(records: Sequence[Mapping[str, Any]]) -> list[JobId]:
    """The jobs whose job item (pk `JOB#<id>`, sk `JOB`: `table.job_key`) a REMOVE record in
    `records` (stream records, as Lambda delivers them) removed, each once, in stream order."""
    found: dict[JobId, None] = {}
    for record in records:
        keys = record.get("dynamodb", {}).get("Keys", {})
        pk, sk = keys.get("pk", {}).get("S", ""), keys.get("sk", {}).get("S")
        if record.get("eventName") != "REMOVE" or sk != "JOB" or not pk.startswith("JOB#"):
            continue
        job_id = pk.removeprefix("JOB#")
        if JOB_ID.fullmatch(job_id) is None:
            log.error("not deleting the objects of job %r: not a job id", job_id)
            continue
        found[JobId(job_id)] = None
    return list(found)


class S3JobObjects:
    """Deletes jobs' objects from the service's bucket."""

    def __init__(self, blobs: S3Blobs, batch: int = BATCH) -> None:
        self.blobs = blobs
        self.batch = batch

    def delete_removed(self, records: Sequence[Mapping[str, Any]]) -> dict[JobId, int]:
        """Delete the objects of every job whose job item `records` removed; how many objects
        each had. Safe to repeat (a stream batch is retried whole): deleting what is gone
        already succeeds. Raises BackendError if S3 refused to delete any of them."""
        jobs = removed_jobs(records)
        if self.blobs.bucket is None:
            return {}  # no bucket: every input and result is in the table
        return {job_id: self.delete(job_id) for job_id in jobs}

    def delete(self, job_id: JobId) -> int:
        """Delete every object of `job_id`; how many were listed (the two single keys are
        deleted whether they exist or not, and not counted)."""
        self._delete(single_keys(job_id))
        deleted = 0
        for prefix in prefixes(job_id):
            for page in self._pages(prefix):
                self._delete(page)
                deleted += len(page)
        log.info("deleted the %d objects of job %s", deleted, job_id)
        return deleted

    def _pages(self, prefix: str) -> Iterator[list[str]]:
        """The keys under `prefix`, a page at a time. Each page is listed after the one before
        it was deleted, from the start again: what is left is what has not been deleted yet."""
        before: list[str] = []
        while True:
            with translated(f"listing s3://{self.blobs.bucket}/{prefix}"):
                listed = self.blobs.client.list_objects_v2(
                    Bucket=self.blobs.bucket, Prefix=prefix, MaxKeys=self.batch
                )
            keys = [found["Key"] for found in listed.get("Contents", [])]
            if not keys:
                return
            if keys == before:  # never loop on a page S3 says it deleted and still lists
                raise BackendError(f"s3://{self.blobs.bucket}/{keys[0]} is still listed")
            yield keys
            before = keys

    def _delete(self, keys: list[str]) -> None:
        with translated(f"deleting {len(keys)} objects from s3://{self.blobs.bucket}"):
            answer = self.blobs.client.delete_objects(
                Bucket=self.blobs.bucket,
                Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
            )
        # DeleteObjects answers 200 with a list of the keys it could not delete.
        errors = answer.get("Errors", [])
        if errors:
            first = errors[0]
            raise BackendError(
                f"S3 did not delete {len(errors)} objects, first {first.get('Key')}:"
                f" {first.get('Code')} {first.get('Message')}"
            )
