"""`/metrics`: the service's metrics in Prometheus' text format (`fanout.metrics` says what is
counted where). Open like `/healthz`: aggregates only, no tenant's data."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from fanout import metrics

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    operation_id="getMetrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def get_metrics(request: Request) -> Response:
    """Jobs submitted and finished by status, item outcomes, chunk durations, webhook attempts
    by outcome, the backlog, live workers."""
    state = request.app.state
    # The backlog is a store read, the multiprocess files a directory's worth: off the loop.
    body, content_type = await run_in_threadpool(
        metrics.exposition, state.service, state.live_workers
    )
    return Response(body, media_type=content_type)
