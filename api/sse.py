"""The response of `GET /jobs/{id}/events` (sse-starlette), in a module of its own, imported by
the route when a stream opens: sse-starlette imports uvicorn (and with it click, watchfiles and
multiprocessing), which the API on Lambda would otherwise load on every cold start."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send


class ReservedStream(EventSourceResponse):
    """An event stream that gives back its reservation however it ends (even unstarted)."""

    def __init__(self, content: AsyncIterator[ServerSentEvent], release: Callable[[], None]):
        super().__init__(content, ping=15, send_timeout=30)
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


def event(data: str, kind: str, event_id: str) -> ServerSentEvent:
    return ServerSentEvent(data=data, event=kind, id=event_id)
