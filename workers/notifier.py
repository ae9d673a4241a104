"""Webhook delivery: how attempts are made, many at once on one asyncio event loop.

Each attempt (`fanout.webhooks.send`) has one deadline covering lookup, connect, send and answer,
and reads at most 64 KiB of the answer. Attempts wait for a slot of their destination (scheme,
host and port: `per_destination` at once) and then for one of the notifier's (`concurrency`), so
a slow or hostile receiver holds at most its own destination's slots, each for at most
FANOUT_WEBHOOK_TIMEOUT, and never another destination's. Which events are due, and recording
each attempt, are `fanout.service.Fanout`'s.

`Notifier` is the long-running engine (`fanout serve`'s notifier, the AWS notice poller);
`deliver_now` delivers one batch and returns (a Lambda invocation).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
from collections.abc import AsyncIterator, Sequence

from fanout import destinations, webhooks
from fanout.models import EventId, WebhookEvent
from fanout.ports import Listener
from fanout.service import Fanout

log = logging.getLogger("fanout.notifier")
CONCURRENCY = 256
# Attempts at once to one destination. A hostile receiver holds at most these (of CONCURRENCY);
# a healthy one answering ~400 webhooks a second (`bench load`) needed more than 4: with 4, its
# attempts queued for a slot and POST -> webhook p99 went 0.47-0.65 s, 0.37-0.42 s with 8.
PER_DESTINATION = 8
POLL_INTERVAL = 0.02
BATCH = 32
# Events held at once (sending, or waiting for their destination's slot): past this the
# notifier takes no more from the outbox until some finish.
MAX_HELD = 1024
# On stop, attempts under way get this long to finish before they are cut off.
STOP_GRACE = 2.0
# Threads for name lookups and store calls: both block. A lookup that hangs holds one.
THREADS = 64


@functools.cache
def client() -> webhooks.Client:
    """One per process, so its TLS context (certifi's authorities, ~20 ms to load) is built
    once, not per Lambda invocation. No redirects (the address check would not see them). No
    keep-alive: requests go to an IP address with the URL's name as TLS server name, and a pool
    keyed by address would reuse one name's TLS connection for another name on the same address
    (measured, keep-alive saved no CPU either:
    `bench/results/2026-12-04-issue9-stop20/load-ab.txt`)."""
    return webhooks.Client()


def destination(url: str) -> str:
    try:
        scheme, host, port = destinations.parts(url)
    except destinations.UnsafeURL:
        return url
    return f"{scheme}://{host.lower()}:{port}"


class Deliverer:
    """Makes attempts and records them, with per-destination and overall concurrency limits."""

    def __init__(self, service: Fanout, http: webhooks.Client, concurrency: int) -> None:
        self.service = service
        self.http = http
        self.slots = asyncio.Semaphore(concurrency)
        self.destinations: dict[str, tuple[asyncio.Semaphore, int]] = {}
        self.closing = False

    @contextlib.asynccontextmanager
    async def _slot(self, url: str) -> AsyncIterator[None]:
        key = destination(url)
        semaphore, users = self.destinations.get(key, (asyncio.Semaphore(PER_DESTINATION), 0))
        self.destinations[key] = (semaphore, users + 1)
        try:
            async with semaphore, self.slots:
                yield
        finally:
            semaphore, users = self.destinations[key]
            if users == 1:
                del self.destinations[key]
            else:
                self.destinations[key] = (semaphore, users - 1)

    async def deliver(self, event: WebhookEvent) -> webhooks.Attempt | None:
        """One attempt, recorded; None when the notifier closed before it could start or when
        the event's claim was lost while it waited (another deliverer has it). An attempt not
        made or cut off by the notifier's stop hands its claim back: it stays due, and a
        restart sends it at once rather than after the lease (3 x FANOUT_WEBHOOK_TIMEOUT + 5 s)."""
        loop = asyncio.get_running_loop()
        try:
            async with self._slot(event.url):
                if self.closing:
                    await loop.run_in_executor(None, self.service.release_claim, event)
                    return None
                # The wait for a slot may have outlived the claim: send only while holding it
                # (asked inline first: mostly it holds, and a thread costs more than the check).
                if not self.service.claim_holds(event):
                    claimed = await loop.run_in_executor(None, self.service.confirm_claim, event)
                    if claimed is None:
                        return None
                    event = claimed
                attempt = await self._send(event)
        except asyncio.CancelledError:
            await loop.run_in_executor(None, self.service.release_claim, event)
            raise
        await loop.run_in_executor(None, self.service.record_attempt, event, attempt)
        return attempt

    async def _send(self, event: WebhookEvent) -> webhooks.Attempt:
        settings = self.service.settings
        return await webhooks.send(
            event, self.http, settings.webhook_allow_networks, settings.webhook_timeout
        )


async def _deliver_all(
    service: Fanout, events: Sequence[WebhookEvent]
) -> list[webhooks.Attempt | BaseException | None]:
    deliverer = Deliverer(service, client(), CONCURRENCY)
    return await asyncio.gather(
        *(deliverer.deliver(event) for event in events), return_exceptions=True
    )


def deliver_now(
    service: Fanout, events: Sequence[WebhookEvent]
) -> list[webhooks.Attempt | BaseException | None]:
    """Deliver a batch concurrently and return each attempt, or what recording it raised. On a
    loop of its own, leaving the thread's current loop alone (Mangum, in the same process in
    tests, uses that one; `asyncio.run` would unset it)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_deliver_all(service, events))
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


class Notifier:
    """The engine on a thread of its own. With `poll`, it takes due events from the outbox every
    20 ms, and at once when the outbox's bell rings while it is idle (`Fanout.listen_for_events`,
    one machine); `submit` hands it events from elsewhere (the AWS notify queue)."""

    def __init__(self, service: Fanout, poll: bool = True) -> None:
        self.service = service
        self.poll = poll
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(THREADS, thread_name_prefix="notifier")
        )
        self.thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        self.stopping: asyncio.Event | None = None
        self.wake = asyncio.Event()  # set by a ring of the outbox's bell, or by stop
        self.held: dict[EventId, asyncio.Task[None]] = {}
        # Ids whose attempt was recorded while an outbox read was under way: that read may
        # still show them as due, so it must not start them again.
        self.recorded_during_read: set[EventId] | None = None
        self.deliverer: Deliverer | None = None
        self.ready = threading.Event()
        self.reads = 0  # outbox reads so far: tests wait for some to pass

    def start(self) -> None:
        self.thread.start()
        self.ready.wait()

    def stop(self) -> None:
        """Stop taking events; attempts under way get STOP_GRACE seconds to finish, and the
        rest hand their claims back, so they are due at once for the next start (receivers
        deduplicate by `webhook-id`)."""
        if self.stopping is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop)
            self.thread.join()

    def submit(self, event: WebhookEvent) -> None:
        """Deliver `event` unless it is already held; thread-safe."""
        self.loop.call_soon_threadsafe(self._hold, event)

    def _rung(self, bell: Listener) -> None:
        if bell.drain():
            self.wake.set()

    def _stop(self) -> None:
        assert self.stopping is not None
        self.stopping.set()
        self.wake.set()

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._main())
        finally:
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    async def _main(self) -> None:
        self.stopping = asyncio.Event()
        self.deliverer = Deliverer(self.service, client(), CONCURRENCY)
        # Events put in the outbox ring it: the next read is at once, not at the next poll.
        bell = self.service.listen_for_events() if self.poll else None
        if bell is not None:
            self.loop.add_reader(bell.fileno(), self._rung, bell)
        self.ready.set()
        try:
            while not self.stopping.is_set():
                self.wake.clear()  # a ring from now on is for events this read may not see
                taken = await self._take_due() if self.poll else 0
                # A read that found events is followed by the next poll, not by a ring: under
                # load a job ends every few ms, and a read (and claim) for each would cost more
                # than the 20 ms they might wait. Idle, a ring starts the read at once.
                woken = self.stopping if taken else self.wake
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), POLL_INTERVAL)
        finally:
            if bell is not None:
                self.loop.remove_reader(bell.fileno())
                bell.close()
        self.deliverer.closing = True
        if self.held:
            await asyncio.wait(list(self.held.values()), timeout=STOP_GRACE)
        for task in list(self.held.values()):
            task.cancel()  # not recorded: its claim is handed back (`Deliverer.deliver`)
        await asyncio.gather(*self.held.values(), return_exceptions=True)

    async def _take_due(self) -> int:
        """Hold the due events read; how many were read."""
        room = MAX_HELD - len(self.held)
        if room <= 0:
            return 0
        self.recorded_during_read = set()
        try:
            # Each event read is claimed for this notifier (none is held already: a held event
            # stays claimed until its attempt is recorded).
            due = await self.loop.run_in_executor(None, self.service.due_events, min(room, BATCH))
        except Exception:
            log.exception("reading the due webhook events failed; will try again")
            return 0
        finally:
            recorded, self.recorded_during_read = self.recorded_during_read, None
            self.reads += 1
        for event in due:
            if event.id not in recorded:
                self._hold(event)
        return len(due)

    def _hold(self, event: WebhookEvent) -> None:
        if event.id in self.held or len(self.held) >= MAX_HELD or self.deliverer is None:
            return
        self.held[event.id] = self.loop.create_task(self._deliver(self.deliverer, event))

    async def _deliver(self, deliverer: Deliverer, event: WebhookEvent) -> None:
        try:
            await deliverer.deliver(event)
        except Exception:
            log.exception("delivering webhook event %s failed; it stays due", event.id)
        finally:
            del self.held[event.id]
            if self.recorded_during_read is not None:
                self.recorded_during_read.add(event.id)
