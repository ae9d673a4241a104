"""Chunk inputs and results as S3 objects, so the DynamoDB items that change stay small."""

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

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        """The object's bytes, or `length` of them from `start` (one ranged GET)."""
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if length is not None:
            if length == 0:
                return b""  # an empty range is not a valid HTTP Range (RFC 9110 §14.1.1)
            request["Range"] = f"bytes={start}-{start + length - 1}"
        with translated(f"reading s3://{self.bucket}/{key}"):
            body: bytes = self.client.get_object(**request)["Body"].read()
        return body
