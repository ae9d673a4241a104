"""Uploads: a place for a client to put an input file too large for a request body, which a
job then names as its `items_url`."""

from __future__ import annotations

import time
import uuid

from fanout.errors import UploadRefused
from fanout.models import TenantId, UploadTarget
from fanout.ports import UploadSink
from fanout.service.base import ServiceBase, log

# An upload's format, as `POST /uploads` names it: the file's extension (which tells the job how
# to read it) and the Content-Type the PUT carries.
UPLOAD_FORMATS = {"json": "json", "jsonl": "jsonl", "ndjson": "jsonl", "csv": "csv"}
UPLOAD_TYPES = {"json": "application/json", "jsonl": "application/x-ndjson", "csv": "text/csv"}


class Uploading(ServiceBase):
    """Upload targets (`POST /uploads`) and, on one machine, where their PUTs write."""

    def create_upload(self, tenant: TenantId, format: str) -> UploadTarget:
        """A place to PUT one input file of `format` (json, jsonl, csv) before `POST /jobs` names
        it as `items_url`; valid for `upload_url_seconds`. The name is random (128 bits): the
        URL, like S3's presigned ones, is the only credential the PUT needs. Raises
        UploadRefused where this deployment takes no uploads."""
        if self.backend.uploads is None:
            raise UploadRefused("this deployment takes no uploads")
        extension = UPLOAD_FORMATS[format]
        name = f"{uuid.uuid4().hex}.{extension}"
        expires_at = time.time() + self.settings.upload_url_seconds
        target = self.backend.uploads.create(name, UPLOAD_TYPES[extension], expires_at)
        log.info("upload %s for tenant %s", target.items_url, tenant)
        return target

    def receive_upload(self, name: str, expires: int, signature: str) -> UploadSink:
        """Where a PUT to an upload URL this service signed writes its file (one machine);
        raises UploadRefused for any other URL, or where uploads go elsewhere (S3)."""
        if self.backend.upload_receiver is None:
            raise UploadRefused("uploads go where POST /uploads said, not to this service")
        return self.backend.upload_receiver.open(name, expires, signature)
