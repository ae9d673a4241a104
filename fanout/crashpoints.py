"""Named points between the steps of a crash-sensitive operation, where a test can kill the
process on purpose: `FANOUT_CRASH_AT=<point>:<marker file>` SIGKILLs the first process that
reaches `<point>` (it creates the marker first, with its pid in it, so the point fires once in
the whole process tree and its restarts). Unset, as everywhere but in tests, a point costs one
dict lookup.

The points (`fanout.service`): `submit.stored` (job stored, first window not yet sent),
`submit.keyed` (keyed job stored, its key not yet finished), `record.stored` (chunk result
stored, released chunks not yet sent, message not yet deleted), `aggregate.counted` (results
counted, released chunks not yet sent), `finalize.output` (final output written, job not yet
terminal), `finalize.claimed` (job terminal, event not yet announced), `redrive.stored` (a
redrive stored, its first window not yet sent); on AWS, `redrive.committed` (the job queued
again and marked, its failed items not yet cut into chunks, nothing planned).
"""

from __future__ import annotations

import os
import signal

ENV = "FANOUT_CRASH_AT"


def crash_point(name: str) -> None:
    setting = os.environ.get(ENV)
    if setting is None:
        return
    point, _, marker = setting.partition(":")
    if point != name or not marker:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return  # fired already
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
