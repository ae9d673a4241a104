"""`GET /jobs/{id}`: the route clients poll, kept as lean as FastAPI allows.

It is included before the other `/jobs` routes (routes are matched in order) and declares no
dependency: FastAPI solves each declared dependency on every request, which cost more than the
read itself here (bench/README.md, `status`). It calls the same functions `Service` and `Tenant`
would, so authentication and tenant isolation are those of every other route.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic_core import to_json

from fanout.api.deps import get_tenant
from fanout.api.schemas import JobPublic
from fanout.models import JobId
from fanout.service import Fanout
from fanout.views import public_job

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobPublic)
async def get_job(job_id: str, request: Request) -> Response:
    tenant = await get_tenant(request)
    service: Fanout = request.app.state.service
    view = to_json(public_job(service.get(tenant, JobId(job_id))), inf_nan_mode="null")
    return Response(view, media_type="application/json")
