"""Input files on one machine: regular files under one directory (`FANOUT_INPUT_DIR`).

An `items_url` is `file:///<absolute path>` or a path relative to that directory. Whatever it
says, the file opened must lie under the directory once every link is followed: `..`, absolute
paths elsewhere, links out of the directory, devices, pipes and directories are refused. The
check is made on the opened file itself (`/proc/self/fd`), so a link swapped in between the
check and the open is caught too.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

from fanout.errors import InputNotFound, InputRefused

READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
BUFFER_BYTES = 1 << 20


class LocalInputFiles:
    """Implements InputFiles on a directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self, url: str) -> IO[bytes]:
        root = Path(os.path.realpath(self.root))
        path = Path(os.path.realpath(root / self._relative(url)))
        if not path.is_relative_to(root):
            raise InputRefused(url, f"not a file under the input directory {self.root}")
        try:
            fd = os.open(path, READ_FLAGS)
        except OSError as error:
            raise _translated(url, error) from error
        try:
            self._check(url, fd, root)
        except BaseException:
            os.close(fd)
            raise
        return os.fdopen(fd, "rb", buffering=BUFFER_BYTES)

    def _relative(self, url: str) -> str:
        """The path `url` names, as given (absolute, or relative to the input directory)."""
        if "\x00" in url:
            raise InputRefused(url, "a path cannot hold a NUL byte")
        parts = urlsplit(url)
        if parts.scheme == "file":
            if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
                raise InputRefused(url, "a file: URL here is file:///<absolute path>")
            return unquote(parts.path)
        if parts.scheme and len(parts.scheme) > 1:  # one letter would be a Windows drive
            raise InputRefused(url, "this service reads file: URLs or paths in its input directory")
        return url

    def _check(self, url: str, fd: int, root: Path) -> None:
        """The opened file is a regular file, and still under the directory (a link in the
        path may have changed since it was resolved)."""
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputRefused(url, "not a regular file")
        try:
            opened = Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return  # no /proc: the resolved path and O_NOFOLLOW are the check
        if not opened.is_relative_to(root):
            raise InputRefused(url, f"not a file under the input directory {self.root}")


def _translated(url: str, error: OSError) -> Exception:
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return InputNotFound(url, "no such file")
    if error.errno == errno.ELOOP:
        return InputRefused(url, "a link, not a file")
    if error.errno in (errno.EACCES, errno.EPERM):
        return InputRefused(url, "the service may not read it")
    return InputRefused(url, os.strerror(error.errno or 0))
