"""Delivering completion events: which are due, claimed so that no attempt goes out twice,
and each attempt recorded with the next one scheduled. How an attempt is made is
`fanout.webhooks` and `fanout.workers.notifier`."""

from __future__ import annotations

import time
from collections.abc import Sequence

from msgspec import structs

from fanout import metrics, webhooks
from fanout.models import DeliveryStatus, Notice, WebhookEvent
from fanout.service.base import ServiceBase

# Where notices announce each event, the schedule delivers only events overdue by this much:
# those whose notice was lost (a crash between the terminal transition and the announce), or
# whose retry was further off than the queue can delay it. Short: each attempt is claimed, so
# the sweep and a late notice never both send it.
NOTICE_GRACE = 10.0
MAX_NOTICE_DELAY = 900.0  # SQS delays a message by at most 15 minutes
# A claimed attempt about to be sent must hold its claim this much longer than the attempt's
# deadline: another host whose clock runs up to a second ahead sees the lease end earlier.
CLAIM_MARGIN = 2.0


class Delivering(ServiceBase):
    """Which completion events are due and who sends each attempt (the outbox's claims)."""

    def due_events(self, limit: int = 32) -> Sequence[WebhookEvent]:
        """Completion events to deliver now, each claimed for this caller: no other deliverer
        (another thread, process or server) sends the same attempt unless this one dies and
        its claim expires. Where notices announce each event, only those overdue by
        NOTICE_GRACE (a notice lost, or a retry further off than the queue can delay it)."""
        now = time.time()
        grace = 0.0 if self.backend.notifications is None else NOTICE_GRACE
        return self._claim(self.backend.outbox.due_events(now - grace, limit))

    def _claim_lease(self) -> float:
        """Long enough for one attempt: the send's own deadline, with room to wait for a slot of
        its destination and to record it. An attempt that waits longer renews its claim
        (`confirm_claim`)."""
        return 3 * self.settings.webhook_timeout + 5.0

    def _claim(self, events: Sequence[WebhookEvent]) -> list[WebhookEvent]:
        """The events this caller claimed, as claimed (each `next_attempt_at` the claim's
        lease), in one call to the store."""
        now = time.time()
        lease_until = now + self._claim_lease()
        # A second of clock skew between hosts, as for notices.
        taken = self.backend.outbox.claim_attempts(events, now + 1.0, lease_until)
        return [
            structs.replace(event, next_attempt_at=lease_until)
            for event, claimed in zip(events, taken, strict=True)
            if claimed
        ]

    def claim_holds(self, event: WebhookEvent) -> bool:
        """Whether a claimed event's claim still covers a whole attempt (plus the hosts' clock
        skew): then `confirm_claim` returns it as it is, without the store, so a deliverer on
        an event loop may ask here first rather than through a thread."""
        left = event.next_attempt_at - time.time()
        return left >= self.settings.webhook_timeout + CLAIM_MARGIN

    def confirm_claim(self, event: WebhookEvent) -> WebhookEvent | None:
        """Called just before an attempt of a claimed event is sent: the event, still claimed
        for at least one whole attempt, or None when its claim was lost (the attempt waited for
        its destination past the lease, and another deliverer took it). A claim with less than
        an attempt's time left (plus the hosts' clock skew) is renewed first."""
        if self.claim_holds(event):
            return event
        now = time.time()
        lease_until = now + self._claim_lease()
        if not self.backend.outbox.renew_claim(event, lease_until):
            return None
        return structs.replace(event, next_attempt_at=lease_until)

    def release_claim(self, event: WebhookEvent) -> None:
        """Hand back the claim on an attempt that was not made or not finished (its deliverer
        stopped first): the event is due again now, where notices announce events announced
        again, so the next deliverer sends it at once instead of after the lease. A claim
        already lost or recorded is left as it is."""
        if self.backend.outbox.renew_claim(event, time.time()):
            self._announce(event)

    def receive_notices(self, max_messages: int = 10) -> Sequence[Notice]:
        """Notices of events to deliver, where the backend announces them (else none)."""
        if self.backend.notifications is None:
            return []
        return self.backend.notifications.receive(max_messages)

    def acknowledge(self, notice: Notice) -> None:
        if self.backend.notifications is not None:
            self.backend.notifications.delete(notice.receipt)

    def notice_event(self, notice: Notice) -> WebhookEvent | None:
        """The event a notice names, if it is still pending and due and this caller claims its
        attempt (as `due_events` does); None for a duplicate or stale notice."""
        job = self.backend.jobs.get_job(notice.job_id)
        event = job.event if job is not None else None
        if (
            event is None
            or event.id != notice.event_id
            or event.status is not DeliveryStatus.PENDING
            or event.next_attempt_at > time.time() + 1.0  # a second of clock skew between hosts
        ):
            return None
        return next(iter(self._claim([event])), None)

    def record_attempt(self, event: WebhookEvent, attempt: webhooks.Attempt) -> None:
        """Record one delivery attempt of a claimed completion event (made by
        `fanout.workers.notifier`) and schedule the next. Where notices announce events, a
        retry the queue can delay that long is announced with its delay; later ones are the
        sweep's (`due_events`)."""
        retry_at = webhooks.next_attempt_at(
            attempt,
            event.attempts + 1,
            self.settings.webhook_max_attempts,
            self.settings.webhook_backoff_base,
            self.settings.webhook_backoff_max,
        )
        self.backend.outbox.record_attempt(
            event.id, time.time(), attempt.status_code, attempt.error, retry_at, attempt.delivered
        )
        metrics.webhook_attempt(attempt.delivered, retry_at is not None)
        if (
            retry_at is not None
            and not attempt.delivered
            and retry_at - time.time() <= MAX_NOTICE_DELAY
        ):
            self._announce(event, max(0.0, retry_at - time.time()))
