"""Uploads on one machine: a signed URL on the server itself, `PUT /uploads/<name>`, that
writes the file into the input directory's `uploads/`, where `LocalInputFiles` reads it as the
job's `items_url`. The same two steps as on AWS (POST /uploads, PUT the file, POST /jobs), so
one client works on both.

The URL is a capability, as S3's presigned URLs are: an HMAC of the name and the expiry under a
key that lives only in this process (a restart voids the URLs it gave out, as their short
life allows). A file is written to a temporary name and renamed into place when complete;
a name is written once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import IO
from urllib.parse import urlencode

from fanout.errors import UploadRefused
from fanout.models import UploadTarget

DIRECTORY = "uploads"


class LocalUploads:
    """Implements Uploads under `root` (the input directory), and receives the PUTs."""

    def __init__(self, root: Path, key: bytes | None = None) -> None:
        self.root = root
        self.key = key or secrets.token_bytes(32)

    def create(self, name: str, content_type: str, expires_at: float) -> UploadTarget:
        expires = int(expires_at)
        query = urlencode({"expires": expires, "signature": self._signature(name, expires)})
        url = f"/uploads/{name}?{query}"
        return UploadTarget(url, {"content-type": content_type}, f"{DIRECTORY}/{name}", expires)

    def _signature(self, name: str, expires: int) -> str:
        return hmac.new(self.key, f"{name}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def open(self, name: str, expires: int, signature: str) -> UploadFile:
        """The file to write an upload into; raises UploadRefused for a URL this process did
        not sign, one past its expiry, or a name written before."""
        # As bytes: compare_digest refuses str with non-ASCII characters.
        if not hmac.compare_digest(self._signature(name, expires).encode(), signature.encode()):
            raise UploadRefused("this upload URL is not valid")
        if time.time() > expires:
            raise UploadRefused("this upload URL has expired: ask POST /uploads for another")
        directory = self.root / DIRECTORY
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / name
        if final.exists():
            raise UploadRefused("this upload URL was used already")
        return UploadFile(final)


class UploadFile:
    """A file being uploaded: written under a temporary name, renamed into place by `commit`
    (refused if another PUT of the same name committed first), removed by `abort`."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.partial = final.with_name(f".{final.name}.{secrets.token_hex(8)}.part")
        self.file: IO[bytes] = self.partial.open("xb")
        self.size = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.size += len(data)

    def commit(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        try:
            os.link(self.partial, self.final)  # fails if the name exists: written once
        except FileExistsError as error:
            raise UploadRefused("this upload URL was used already") from error
        finally:
            self.partial.unlink(missing_ok=True)

    def abort(self) -> None:
        self.file.close()
        self.partial.unlink(missing_ok=True)
