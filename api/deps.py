"""Dependencies the routes declare: the service, and the caller's tenant."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from fanout.api.keys import ApiKeys, KeysUnavailable
from fanout.api.problems import Problem
from fanout.models import TenantId
from fanout.service import Fanout

DEFAULT_TENANT = TenantId("default")

# Both are `async def` although they never await: FastAPI runs a plain `def` dependency in the
# threadpool, and two threadpool hops per request cut GET /jobs/{id} from ~4.7k to ~1.8k req/s
# (wrk, 50 connections; bench/README.md). Neither does any I/O.


async def get_service(request: Request) -> Fanout:
    service: Fanout = request.app.state.service
    return service


async def get_tenant(request: Request) -> TenantId:
    """Each API key is a tenant. With no keys configured there is one tenant, and the server
    only listens on loopback (`fanout serve` enforces that; on Lambda the API refuses to start).
    Keys from SSM are read at most once per TTL: a blocking read then, a dict lookup otherwise."""
    keys: ApiKeys = request.app.state.api_keys
    if keys.open:
        return DEFAULT_TENANT
    try:
        tenants = keys.tenants()
    except KeysUnavailable as error:
        raise Problem(503, "The API keys cannot be read; try again shortly.") from error
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        for key, tenant in tenants.items():
            if hmac.compare_digest(key.encode(), token.strip().encode()):
                return TenantId(tenant)
    raise Problem(
        401,
        "Send a configured API key as `Authorization: Bearer <key>`.",
        headers={"www-authenticate": "Bearer"},
    )


Service = Annotated[Fanout, Depends(get_service)]
Tenant = Annotated[TenantId, Depends(get_tenant)]
