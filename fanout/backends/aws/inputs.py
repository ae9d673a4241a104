"""Input files on AWS: objects in the service's bucket, named `s3://<bucket>/<key>`.

The object's body is handed over as it comes from S3 (botocore's streaming body), so a large
file is read as a stream. Only uploads in the service's own bucket are read (`POST /uploads`
makes them): its role may read no other bucket, and its own holds other tenants' data.
"""

from __future__ import annotations

from typing import IO, Any
from urllib.parse import unquote, urlsplit

from fanout.backends.aws.clients import error_code, translated
from fanout.errors import InputNotFound, InputRefused

UPLOADS = "uploads/"
MISSING = {"NoSuchKey", "404", "NotFound"}
FORBIDDEN = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidObjectState"}


class S3InputFiles:
    """Implements InputFiles on the service's bucket."""

    def __init__(self, bucket: str | None, client: Any) -> None:
        self.bucket = bucket
        self.client = client

    def open(self, url: str) -> IO[bytes]:
        key = self._key(url)
        try:
            with translated(f"reading {url}"):
                found = self.client.get_object(Bucket=self.bucket, Key=key)
        except Exception as error:
            code = error_code(error.__cause__ or error)
            if code in MISSING:
                raise InputNotFound(url, "no such object") from error
            if code in FORBIDDEN:
                raise InputRefused(url, f"the service may not read it ({code})") from error
            raise
        body: IO[bytes] = found["Body"]
        return body

    def _key(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "s3":
            raise InputRefused(url, "this service reads s3://<its bucket>/<key> URLs")
        if self.bucket is None:
            raise InputRefused(url, "this deployment has no bucket (FANOUT_BUCKET)")
        if parts.netloc != self.bucket:
            raise InputRefused(url, f"not in the service's bucket {self.bucket}")
        key = unquote(parts.path.removeprefix("/"))
        if not key or parts.query or parts.fragment:
            raise InputRefused(url, "name an object: s3://<bucket>/<key>")
        # The bucket also holds every tenant's chunk inputs and results: a job reads uploads
        # only (POST /uploads), whose random names are known to their uploader alone.
        if not key.startswith(UPLOADS) or key == UPLOADS:
            raise InputRefused(url, f"not an upload: name s3://{self.bucket}/{UPLOADS}<name>")
        return key
