"""Idempotency keys on SQLite: a key claimed for one job, its response stored, kept a day."""

from __future__ import annotations

from fanout.backends.sqlite.db import Database
from fanout.errors import IdempotencyConflict, IdempotencyMismatch
from fanout.models import JobId, KeyClaim, TenantId

IDEMPOTENCY_TTL = 24 * 3600.0


class SqliteIdempotencyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def claim(
        self, tenant: TenantId, key: str, fingerprint: str, job_id: JobId, now: float, lease: float
    ) -> KeyClaim:
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT fingerprint, response, created_at, job_id, claimed_at FROM idempotency"
                " WHERE tenant = ? AND key = ?",
                (tenant, key),
            ).fetchone()
            if row is None or row[2] < now - IDEMPOTENCY_TTL:
                conn.execute(
                    "INSERT OR REPLACE INTO idempotency"
                    " (tenant, key, fingerprint, created_at, job_id, claimed_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (tenant, key, fingerprint, now, job_id, now),
                )
                return KeyClaim(job_id)
            held, response, _, bound, claimed_at = row
            if held != fingerprint:
                raise IdempotencyMismatch(key)
            if response is not None:
                return KeyClaim(JobId(bound), response)
            if claimed_at > now - lease:
                raise IdempotencyConflict(key)
            conn.execute(  # its holder is gone: take the key over, bound to the same job
                "UPDATE idempotency SET claimed_at = ? WHERE tenant = ? AND key = ?",
                (now, tenant, key),
            )
            return KeyClaim(JobId(bound))

    def finish(self, tenant: TenantId, key: str, response: bytes) -> None:
        with self.db.write() as conn:
            conn.execute(
                "UPDATE idempotency SET response = ? WHERE tenant = ? AND key = ?",
                (response, tenant, key),
            )

    def abandon(self, tenant: TenantId, key: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                "DELETE FROM idempotency WHERE tenant = ? AND key = ? AND response IS NULL",
                (tenant, key),
            )
