"""`/uploads`: a place for an input file too large for a request body.

`POST /uploads` answers where to PUT the file and the `items_url` that names it; the client
PUTs the file there, then submits `POST /jobs` with that `items_url`. On AWS the URL is a
presigned S3 PUT (Lambda takes request bodies of 6 MB at most); on one machine it is
`PUT /uploads/<name>` on this server, signed the same way, so one client works on both.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

from fanout.api.deps import Service, Tenant
from fanout.api.problems import Problem
from fanout.errors import UploadRefused
from fanout.ports import UploadSink

router = APIRouter(prefix="/uploads", tags=["uploads"])
NAME = r"^[0-9a-f]{32}\.(json|jsonl|csv)$"


class UploadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["json", "jsonl", "ndjson", "csv"] = Field(
        description="json: one array of items; jsonl/ndjson: one item per line; csv: a header"
        " row, then one item per row."
    )


class UploadPublic(BaseModel):
    upload_url: str = Field(description="PUT the file here, with `headers`; no API key needed.")
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str]
    items_url: str = Field(description="The `items_url` of the `POST /jobs` that reads the file.")
    expires_at: str = Field(description="The URL takes the file until then (RFC 3339, UTC).")


@router.post("", status_code=201, response_model=UploadPublic)
async def create_upload(
    create: UploadCreate, request: Request, service: Service, tenant: Tenant
) -> Response:
    try:
        target = await run_in_threadpool(service.create_upload, tenant, create.format)
    except UploadRefused as error:
        raise Problem(404, str(error)) from error
    url = target.url if "://" in target.url else str(request.base_url).rstrip("/") + target.url
    expires = datetime.fromtimestamp(target.expires_at, UTC).isoformat().replace("+00:00", "Z")
    body = UploadPublic(
        upload_url=url, headers=target.headers, items_url=target.items_url, expires_at=expires
    )
    return Response(to_json(body.model_dump()), 201, media_type="application/json")


@router.put(
    "/{name}",
    status_code=201,
    responses={403: {"description": "Not a valid upload URL"}, 413: {"description": "Too large"}},
)
async def receive_upload(
    name: Annotated[str, Path(pattern=NAME)],
    request: Request,
    service: Service,
    expires: Annotated[int, Query()],
    signature: Annotated[str, Query(pattern="^[0-9a-f]{64}$")],
) -> Response:
    """The file of an upload URL this server gave (one machine; on AWS the URL is S3's). Its
    signature is the credential, as with S3's presigned URLs: no API key."""
    try:
        sink = service.receive_upload(name, expires, signature)
    except UploadRefused as error:
        raise Problem(403, str(error)) from error
    try:
        await _receive(sink, request, service.settings.max_input_bytes)
        sink.commit()
    except UploadRefused as error:
        raise Problem(409, str(error)) from error
    except BaseException:
        sink.abort()
        raise
    return Response(status_code=201)


async def _receive(sink: UploadSink, request: Request, limit: int) -> None:
    written = 0
    async for part in request.stream():
        written += len(part)
        if written > limit:
            raise Problem(413, f"The file is over the limit of {limit} bytes.")
        sink.write(part)
