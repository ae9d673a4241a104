"""Each finished job's final output on S3: its ordered results as JSON Lines, one line per item
in input order, at `outputs/<job_id>.jsonl` in the configured bucket."""

from __future__ import annotations

from collections.abc import Iterable

from fanout.backends.aws.blobs import S3Blobs
from fanout.models import JobId

PREFIX = "outputs/"


def output_key(job_id: JobId) -> str:
    return f"{PREFIX}{job_id}.jsonl"


class S3FinalOutputs:
    def __init__(self, blobs: S3Blobs) -> None:
        self.blobs = blobs

    def write(self, job_id: JobId, lines: Iterable[bytes]) -> str:
        # One PutObject of the whole body: jobs up to the service's item limit stay far below
        # S3's 5 GB single-upload limit at the sizes results are stored at.
        self.blobs.put(output_key(job_id), b"".join(line + b"\n" for line in lines))
        return self.location(job_id)

    def location(self, job_id: JobId) -> str:
        return f"s3://{self.blobs.bucket}/{output_key(job_id)}"
