"""Dependencies the routes declare: the service, and the caller's tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from fanout.api.middleware import DEFAULT_TENANT, unauthorized
from fanout.models import TenantId
from fanout.service import Fanout

__all__ = ["DEFAULT_TENANT", "Service", "Tenant", "get_service", "get_tenant"]

# Both are `async def` although they never await: FastAPI runs a plain `def` dependency in the
# threadpool, and two threadpool hops per request cut GET /jobs/{id} from ~4.7k to ~1.8k req/s
# (wrk, 50 connections; bench/README.md). Neither does any I/O.


async def get_service(request: Request) -> Fanout:
    service: Fanout = request.app.state.service
    return service


async def get_tenant(request: Request) -> TenantId:
    """Each API key is a tenant; with no keys configured there is one tenant, and only loopback
    is served. `fanout.api.middleware.Guard` checks the key before any body is read, and leaves
    the tenant in the request's state (None: no valid key, on a safe method)."""
    tenant: TenantId | None = request.scope.get("state", {}).get("tenant")
    if tenant is None:
        raise unauthorized()
    return tenant


Service = Annotated[Fanout, Depends(get_service)]
Tenant = Annotated[TenantId, Depends(get_tenant)]
