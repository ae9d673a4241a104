"""A job's terminal transition on DynamoDB: one conditional write that the first finisher wins,
with the completion event in the same item."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic_core import to_json

from fanout.backends.aws.chunk_items import DynamoChunkItems
from fanout.backends.aws.job_items import (
    ACTIVE_VALUES,
    IS_ACTIVE,
    OWN_WRITE,
    STATUS,
    add_requests,
    merged,
)
from fanout.backends.aws.table import Item, job_key
from fanout.models import DeliveryStatus, JobId, JobStatus, WebhookEvent


class DynamoCompletion(DynamoChunkItems):
    def claim_completion(
        self,
        job_id: JobId,
        status: JobStatus,
        finished_at: float,
        reduce_value: Any,
        error: str | None,
        event: WebhookEvent | None,
        requests: Mapping[str, float] | None = None,
    ) -> bool:
        # Timeline: the last count's finalize, the reconciler, a timeout and a cancel may all
        # try at once; the condition lets the first through and refuses everyone after it.
        # The event is written with the transition, in the same item: one atomic write.
        values: Item = {
            ":status": status.value,
            ":status_id": f"{status.value}#{job_id}",
            ":now": finished_at,
            ":reduce_value": to_json(reduce_value).decode(),
            ":error": error,
            ":expires_at": int(finished_at + self.retention),
            **ACTIVE_VALUES,
        }
        sets = [
            "#status = :status",
            "status_id = :status_id",
            "finished_at = :now",
            "updated_at = :now",
            "reduce_value = :reduce_value",
            "#error = :error",
            "expires_at = :expires_at",
        ]
        if event is not None:
            # record_attempt knows only the event id: point it at the job first.
            self.table.put(
                {
                    "pk": f"EVENT#{event.id}",
                    "sk": "EVENT",
                    "job_id": job_id,
                    "expires_at": int(finished_at + self.retention),
                }
            )
            sets += [
                "event_id = :event_id",
                "event_url = :event_url",
                "event_secret = :event_secret",
                "event_payload = :event_payload",
                "event_status = :event_status",
                "event_attempts = :zero",
                "event_history = :no_attempts",
                "next_attempt_at = :now",
                "due = :due",  # the sparse `due` index holds pending events only
            ]
            values |= {
                ":event_id": event.id,
                ":event_url": event.url,
                ":event_secret": event.secret,
                ":event_payload": event.payload,
                ":event_status": DeliveryStatus.PENDING.value,
                ":zero": 0,
                ":no_attempts": [],
                ":due": "1",
            }
        names = {**STATUS, "#error": "error"}
        # Finalizing's requests, and this write's own unit.
        adds = add_requests(merged(requests or {}, OWN_WRITE), names, values)
        claimed = self.table.update(
            job_key(job_id),
            # ...and leave the sparse `active` index.
            f"SET {', '.join(sets)} REMOVE active ADD {', '.join(adds)}",
            condition=IS_ACTIVE,
            names=names,
            values=values,
        )
        return claimed is not None
