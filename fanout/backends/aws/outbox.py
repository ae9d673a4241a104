"""The webhook outbox and idempotency keys on DynamoDB.

A completion event lives on its job item (written by the same conditional update that ends the
job); the sparse `due` index holds the events still pending, by `next_attempt_at`.
"""

from __future__ import annotations

from fanout.backends.aws.store import event_from_item
from fanout.backends.aws.table import Item, Table, job_key
from fanout.errors import IdempotencyConflict, IdempotencyMismatch
from fanout.models import DeliveryStatus, EventId, TenantId, WebhookEvent

IDEMPOTENCY_TTL = 24 * 3600.0


class DynamoOutbox:
    def __init__(self, table: Table) -> None:
        self.table = table

    def due_events(self, now: float, limit: int) -> list[WebhookEvent]:
        items = self.table.query(
            "#due = :one AND next_attempt_at <= :now",
            {":one": "1", ":now": now},
            index="due",
            names={"#due": "due"},
            limit=limit,
        )
        return [event_from_item(item) for item in items]

    def record_attempt(
        self,
        event_id: EventId,
        at: float,
        status_code: int | None,
        error: str | None,
        next_attempt_at: float | None,
        delivered: bool,
    ) -> None:
        pointer = self.table.get({"pk": f"EVENT#{event_id}", "sk": "EVENT"})
        if pointer is None:
            return
        status = DeliveryStatus.after_attempt(delivered, next_attempt_at)
        sets = [
            "event_status = :status",
            "event_attempts = event_attempts + :one",
            "event_history = list_append(event_history, :attempt)",
        ]
        values: Item = {
            ":status": status.value,
            ":one": 1,
            ":attempt": [{"at": at, "status_code": status_code, "error": error}],
            ":event_id": event_id,
        }
        if next_attempt_at is not None:
            sets.append("next_attempt_at = :next")
            values[":next"] = next_attempt_at
        # A delivered or abandoned event leaves the sparse `due` index.
        done = "" if status is DeliveryStatus.PENDING else " REMOVE #due"
        self.table.update(
            job_key(pointer["job_id"]),
            f"SET {', '.join(sets)}{done}",
            condition="event_id = :event_id",
            names={"#due": "due"} if done else None,
            values=values,
        )


def idempotency_key(tenant: TenantId, key: str) -> Item:
    # Length-prefixed, so no tenant and key pair reads as another.
    return {"pk": f"IDEM#{len(tenant)}:{tenant}#{key}", "sk": "IDEM"}


class DynamoIdempotencyStore:
    def __init__(self, table: Table) -> None:
        self.table = table

    def begin(self, tenant: TenantId, key: str, fingerprint: str, now: float) -> bytes | None:
        # Timeline: the first request claims the key; an identical retry after it finished gets
        # the stored response, one while it runs a conflict. A claim older than a day has
        # expired (TTL deletes lazily) and is claimed anew.
        unclaimed = "attribute_not_exists(pk) OR created_at < :stale"
        claim = {
            **idempotency_key(tenant, key),
            "fingerprint": fingerprint,
            "created_at": now,
            "expires_at": int(now + IDEMPOTENCY_TTL),
        }
        for _ in range(3):
            if self.table.put(claim, unclaimed, values={":stale": now - IDEMPOTENCY_TTL}):
                return None
            held = self.table.get(idempotency_key(tenant, key))
            if held is None:
                continue  # abandoned in between: claim it again
            if held["fingerprint"] != fingerprint:
                raise IdempotencyMismatch(key)
            if held.get("response") is None:
                raise IdempotencyConflict(key)
            response: bytes = held["response"]
            return response
        raise IdempotencyConflict(key)

    def finish(self, tenant: TenantId, key: str, response: bytes) -> None:
        self.table.update(
            idempotency_key(tenant, key),
            "SET #response = :response",
            names={"#response": "response"},
            values={":response": response},
        )

    def abandon(self, tenant: TenantId, key: str) -> None:
        self.table.delete(
            idempotency_key(tenant, key),
            "attribute_not_exists(#response)",
            names={"#response": "response"},
        )
