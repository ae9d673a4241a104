"""The policy: what submitting, running, finishing and reconciling a job mean.

`api/` and `workers/` call only this package's `Fanout`. Every method of it is safe to call
again after a crash at any point: stores make each step idempotent, and the reconciler repeats
what a crash cut short (release, finalize).
"""

from __future__ import annotations

from fanout.service.backend import Backend
from fanout.service.delivering import Delivering
from fanout.service.finishing import event_id
from fanout.service.housekeeping import Housekeeping
from fanout.service.running import Running, TaskNotFound, WorkerLost
from fanout.service.submission import JobRequest, Submission, new_job_id
from fanout.service.submitting import Render, Submitting
from fanout.service.uploading import Uploading

__all__ = [
    "Backend",
    "Fanout",
    "JobRequest",
    "Render",
    "Submission",
    "TaskNotFound",
    "WorkerLost",
    "event_id",
    "new_job_id",
]


class Fanout(Submitting, Uploading, Running, Housekeeping, Delivering):
    """The whole policy over one `Backend`, built as `Fanout(backend, settings)`. Each part
    lives in its own module and derives from the parts it calls: submitting (taking in,
    controlling, finishing, reading), uploading, running, housekeeping and delivering."""
