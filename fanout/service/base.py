"""What every part of the policy shares: the backend, the settings, the caches, and handing
released chunks and completion events on to their queues."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext

from fanout import chunking
from fanout.models import Backlog, ChunkRef, Notice, WebhookEvent
from fanout.ports import Listener
from fanout.service.backend import Backend
from fanout.settings import Settings

# One logger for the whole policy, whichever part of it speaks.
log = logging.getLogger("fanout.service")


class ServiceBase:
    """The state the parts of `Fanout` share. Each part is a class deriving from the parts
    whose methods it calls, so `mypy --strict` checks every call between them."""

    def __init__(self, backend: Backend, settings: Settings) -> None:
        self.backend = backend
        self.settings = settings
        self._times = chunking.TaskTimes(backend.stats) if backend.stats is not None else None
        self._measured: dict[str, tuple[float, float | None]] = {}
        self._backlog: tuple[float, Backlog] | None = None
        self._backlog_lock = threading.Lock()
        self._counting = threading.Lock()  # held by the one thread counting the backlog
        self._recount_claimed = -math.inf  # when a caller last took it on to count afresh

    def listen_for_chunks(self) -> Listener | None:
        """Where a worker waits for chunks between polls (None: it sleeps between them)."""
        return None if self.backend.wakeups is None else self.backend.wakeups.chunks()

    def listen_for_events(self) -> Listener | None:
        """Where a notifier waits for completion events between polls (None: it sleeps)."""
        return None if self.backend.wakeups is None else self.backend.wakeups.events()

    @property
    def where(self) -> str:
        return self.backend.where

    @property
    def counts_by_stream(self) -> bool:
        """Results are counted by a change-feed poller (`aggregate_changes`), not as recorded."""
        return self.backend.changes is not None

    @property
    def purges(self) -> bool:
        """Ended jobs are removed by `purge`, run periodically (the store has no expiry)."""
        return self.backend.retention is not None and self.settings.retention_days > 0

    @property
    def announces_events(self) -> bool:
        """Completion events are announced on a notification queue (`receive_notices`)."""
        return self.backend.notifications is not None

    def _send(self, chunks: Sequence[ChunkRef]) -> None:
        """Send released chunks, unless the store already queued them in its own transaction;
        either way, wake the workers waiting for chunks (`Backend.wakeups`)."""
        if chunks and not self.backend.store_enqueues:
            self.backend.queue.send(chunks)
        if chunks and self.backend.wakeups is not None:
            self.backend.wakeups.ring_chunks()

    def _announce(self, event: WebhookEvent, delay: float = 0.0) -> None:
        """Say that `event` is due in `delay` seconds: a notice (AWS), or the outbox's bell
        when it is due now (one machine: a retry's later time is the notifier's poll's)."""
        if self.backend.wakeups is not None and delay <= 0:
            self.backend.wakeups.ring_events()
        if self.backend.notifications is None:
            return
        try:
            self.backend.notifications.announce(Notice(event.id, event.job_id), delay)
        except Exception:
            # The event is in the outbox: the schedule delivers it once it is overdue.
            log.exception("event %s stored, but announcing it failed", event.id)

    def _metered(self) -> AbstractContextManager[Mapping[str, float]]:
        """A scope counting the requests made in it, where the backend bills by the request."""
        return self.backend.metered() if self.backend.metered is not None else nullcontext({})
