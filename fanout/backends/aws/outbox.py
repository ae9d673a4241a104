"""The webhook outbox and idempotency keys on DynamoDB.

A completion event lives on its job item (written by the same conditional update that ends the
job); the sparse `due` index holds the events still pending, by `next_attempt_at`.
"""

from __future__ import annotations

from collections.abc import Sequence

from fanout.backends.aws.job_items import event_from_item
from fanout.backends.aws.table import Item, Table, job_key
from fanout.errors import IdempotencyConflict, IdempotencyMismatch
from fanout.models import DeliveryStatus, EventId, JobId, KeyClaim, TenantId, WebhookEvent

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

    def claim_attempts(
        self, events: Sequence[WebhookEvent], now: float, lease_until: float
    ) -> list[bool]:
        # One conditional update each: a transaction would refuse the whole batch for one claim
        # lost to another deliverer.
        return [self._claim(event, now, lease_until) for event in events]

    def _claim(self, event: WebhookEvent, now: float, lease_until: float) -> bool:
        # Timeline: two deliverers read the same due event; the first moves its next attempt
        # past the lease, the second's condition (the same attempt, still due) then fails. The
        # attempt's record moves `next_attempt_at` on; a dead deliverer's lease just runs out.
        still_pending = "event_status = :pending"
        same_attempt = "event_attempts = :attempts"
        due = "next_attempt_at <= :now"
        claimed = self.table.update(
            job_key(event.job_id),
            "SET next_attempt_at = :until",
            condition=f"event_id = :event_id AND {still_pending} AND {same_attempt} AND {due}",
            values={
                ":until": lease_until,
                ":event_id": event.id,
                ":pending": DeliveryStatus.PENDING.value,
                ":attempts": event.attempts,
                ":now": now,
            },
        )
        return claimed is not None

    def renew_claim(self, event: WebhookEvent, lease_until: float) -> bool:
        # Timeline: a deliverer's lease runs out while its attempt waits for a slot; another
        # claims the attempt, which moves `next_attempt_at` to its own lease. The first's
        # renewal then finds neither its lease nor (once recorded) the same attempt.
        still_pending = "event_status = :pending"
        same_attempt = "event_attempts = :attempts"
        still_held = "next_attempt_at = :held"
        condition = f"event_id = :event_id AND {still_pending} AND {same_attempt} AND {still_held}"
        renewed = self.table.update(
            job_key(event.job_id),
            "SET next_attempt_at = :until",
            condition=condition,
            values={
                ":until": lease_until,
                ":event_id": event.id,
                ":pending": DeliveryStatus.PENDING.value,
                ":attempts": event.attempts,
                ":held": event.next_attempt_at,
            },
        )
        return renewed is not None

    def undelivered(self) -> int:
        """Counted on the sparse `due` index, which holds pending events only."""
        return self.table.count("#due = :one", {":one": "1"}, index="due", names={"#due": "due"})

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

    def claim(
        self, tenant: TenantId, key: str, fingerprint: str, job_id: JobId, now: float, lease: float
    ) -> KeyClaim:
        # Timeline: the first request claims the key, bound to the job id it will create; an
        # identical retry after it finished gets the stored response, one while it runs a
        # conflict, one after its lease ran out (its holder died) takes the claim over, bound
        # to the same job id. A claim older than a day has expired (TTL deletes lazily).
        unclaimed = "attribute_not_exists(pk) OR created_at < :stale"
        claim = {
            **idempotency_key(tenant, key),
            "fingerprint": fingerprint,
            "job_id": job_id,
            "created_at": now,
            "claimed_at": now,
            "expires_at": int(now + IDEMPOTENCY_TTL),
        }
        for _ in range(3):
            if self.table.put(claim, unclaimed, values={":stale": now - IDEMPOTENCY_TTL}):
                return KeyClaim(job_id)
            held = self.table.get(idempotency_key(tenant, key))
            if held is None:
                continue  # abandoned in between: claim it again
            if held["fingerprint"] != fingerprint:
                raise IdempotencyMismatch(key)
            bound = JobId(held.get("job_id", job_id))
            if held.get("response") is not None:
                return KeyClaim(bound, held["response"])
            if float(held.get("claimed_at") or held["created_at"]) > now - lease:
                raise IdempotencyConflict(key)
            if self._take_over(tenant, key, held, now):
                return KeyClaim(bound)
        raise IdempotencyConflict(key)

    def _take_over(self, tenant: TenantId, key: str, held: Item, now: float) -> bool:
        """Renew a dead holder's claim; of two racing retries, only one wins."""
        seen_claim = "claimed_at = :seen"
        seen_before_leases = "(attribute_not_exists(claimed_at) AND created_at = :seen)"
        unfinished = "attribute_not_exists(#response)"
        taken = self.table.update(
            idempotency_key(tenant, key),
            "SET claimed_at = :now",
            condition=f"({seen_claim} OR {seen_before_leases}) AND {unfinished}",
            names={"#response": "response"},
            values={":now": now, ":seen": held.get("claimed_at") or held["created_at"]},
        )
        return taken is not None

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
