"""Chunk inputs and results too large for a DynamoDB item, as S3 objects."""

from __future__ import annotations

from typing import Any

from fanout.backends.aws.clients import translated
from fanout.errors import BackendError


class S3Blobs:
    def __init__(self, bucket: str | None, client: Any) -> None:
        self.bucket = bucket
        self.client = client

    def put(self, key: str, body: bytes) -> None:
        if self.bucket is None:
            raise BackendError(f"{key} is over DynamoDB's item size; set FANOUT_BUCKET for it")
        with translated(f"writing s3://{self.bucket}/{key}"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body)

    def get(self, key: str) -> bytes:
        with translated(f"reading s3://{self.bucket}/{key}"):
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body
