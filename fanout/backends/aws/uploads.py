"""Uploads on AWS: a presigned S3 PUT under `uploads/` in the service's bucket.

The client PUTs the file straight to S3 (no size limit of Lambda's in the way), with the
Content-Type the URL was signed for; `S3InputFiles` then reads it as the job's `items_url`.
The bucket's lifecycle deletes uploads after two days (infra/template.yaml).
"""

from __future__ import annotations

import math
import time
from typing import Any

from fanout.backends.aws.clients import translated
from fanout.errors import BackendError
from fanout.models import UploadTarget

PREFIX = "uploads/"
MAX_EXPIRY = 7 * 24 * 3600  # SigV4's longest presigned URL


class S3Uploads:
    """Implements Uploads on the service's bucket."""

    def __init__(self, bucket: str | None, client: Any) -> None:
        self.bucket = bucket
        self.client = client

    def create(self, name: str, content_type: str, expires_at: float) -> UploadTarget:
        if self.bucket is None:
            raise BackendError("uploads need a bucket: set FANOUT_BUCKET")
        key = PREFIX + name
        seconds = max(1, min(MAX_EXPIRY, math.ceil(expires_at - time.time())))
        # Signing is local (no request): the URL carries the role's credentials' signature, so
        # the role needs s3:PutObject on uploads/* (infra/template.yaml).
        with translated("signing an upload URL"):
            url: str = self.client.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
                ExpiresIn=seconds,
                HttpMethod="PUT",
            )
        items_url = f"s3://{self.bucket}/{key}"
        return UploadTarget(url, {"content-type": content_type}, items_url, expires_at)
