"""When a job's items expire (the table's TTL attribute, `expires_at`).

Nothing a running job needs may expire before the job ends: its chunk inputs, plan pages and
results are read until its last chunk is recorded and it is finalized. DynamoDB's TTL is set as
an item is written, and moving it later costs a write per item (a job of a million items has
thousands), so every job on AWS has a deadline, and what it needs expires the retention after
that deadline: a job given `timeout_seconds` ends by then anyway; one without it gets
LONGEST_RUN, after which the reconciler fails it as it fails any job past its deadline. The job
item itself carries no `expires_at` while the job runs; it gets one when the job ends.
"""

from __future__ import annotations

from typing import Any

# The longest a job without `timeout_seconds` runs on AWS: as long as SQS keeps a message (its
# 14-day maximum, https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/
# API_SetQueueAttributes.html, MessageRetentionPeriod).
LONGEST_RUN = 14 * 24 * 3600.0


def deadline(started: float, timeout_seconds: float | None) -> float:
    """When a run started at `started` is failed as timed out."""
    return started + (timeout_seconds or LONGEST_RUN)


def of_running_job(job: dict[str, Any], now: float, retention: float) -> int:
    """`expires_at` for an item written while `job` (its raw item) runs: the retention after
    its deadline, never before the retention from now. A job stored before every job had a
    deadline is given one from now."""
    until = job.get("deadline")
    return int(max(float(until) if until is not None else deadline(now, None), now) + retention)
