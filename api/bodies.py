"""The bodies `POST /jobs` takes, turned into the service's `JobRequest`.

- `application/json` (the default): a `JobCreate` object, items inline or an `items_url`; read
  whole, up to FANOUT_MAX_BODY_BYTES.
- `application/x-ndjson` (or `application/jsonl`) and `text/csv`: the items alone, one a line,
  with the task and the options as query parameters (`?task=echo&chunk_size=100&params={...}`,
  the webhook as `webhook_url` and `webhook_secret`). Read as a stream while the job is taken
  in, up to FANOUT_MAX_INPUT_BYTES: the items are never held whole.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import anyio.from_thread
import msgspec
from fastapi import Request
from pydantic import ValidationError
from pydantic_core import from_json

from fanout import jsonvalues, readers
from fanout.api.problems import Problem, shorten, validation_errors
from fanout.api.schemas import JobCreate
from fanout.service import JobRequest
from fanout.settings import Settings

WEBHOOK_PARAMETERS = {"webhook_url": "url", "webhook_secret": "secret"}
STREAMED = "Only with an NDJSON or CSV body (a JSON body carries it in the object)."


def _parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": f"{description} {STREAMED}",
    }


def _items_body(description: str) -> dict[str, Any]:
    return {"schema": {"type": "string", "description": description}}


# What `POST /jobs` declares in its OpenAPI operation: its three kinds of body, and the query
# parameters a body of items alone comes with.
OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/JobCreate"}},
            "application/x-ndjson": _items_body("One item a line, each a JSON value."),
            "application/jsonl": _items_body("As application/x-ndjson."),
            "text/csv": _items_body("A header row, then one item (an object of strings) a row."),
        },
    },
    "parameters": [
        _parameter("task", {"type": "string"}, "The task's name: required with such a body."),
        _parameter("params", {"type": "string"}, "The params, as a JSON object."),
        _parameter("webhook_url", {"type": "string"}, "Receives the completion event."),
        _parameter("webhook_secret", {"type": "string"}, "Its Standard Webhooks secret."),
        *(
            _parameter(name, {"type": kind}, f"As `{name}` in a JSON body.")
            for name, kind in (
                ("chunk_size", "integer"),
                ("max_concurrency", "integer"),
                ("max_attempts", "integer"),
                ("tolerated_failure_count", "integer"),
                ("tolerated_failure_percentage", "number"),
                ("timeout_seconds", "number"),
                ("reduce", "string"),
            )
        ),
    ],
}


def streamed_format(request: Request) -> readers.Format | None:
    """The format of a body of items alone (NDJSON, CSV), or None for a JSON job object."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    return readers.MEDIA_TYPES.get(media)


async def read_body(request: Request, limit: int) -> bytearray:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise Problem(413, too_large(f"over the limit of {limit} bytes"))
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise Problem(413, too_large(f"over the limit of {limit} bytes"))
    return body


def too_large(why: str) -> str:
    """A 413's detail: why, and the way in for a larger input (on Lambda, 6 MB is the most a
    request can carry)."""
    return (
        f"The body is {why}. Send a larger input as a file: POST /uploads, PUT the file to the"
        " upload_url it returns, then POST /jobs with its items_url."
    )


def parse(body: bytes | bytearray) -> JobRequest:
    """A JSON job object as the service's request. Its fields but the items are validated as
    a `JobCreate` (errors name them as usual); the items stay raw bytes of the body, read one
    at a time as the job is taken in, so a million items are never a million Python objects
    at once (msgspec finds the array's bytes and checks the JSON; ijson reads the items)."""
    try:
        fields = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
    except (msgspec.DecodeError, RecursionError) as error:
        raise not_json(body, error) from error
    raw = fields.pop("items", None)
    array = raw is not None and bytes(memoryview(raw)[:1]) == b"["
    if raw is not None and array and jsonvalues.suspicious(memoryview(raw)):
        _refuse_non_finite(bytes(memoryview(raw)))
    values = {name: from_json(bytes(memoryview(value))) for name, value in fields.items()}
    if raw is not None:
        values["items"] = (
            [] if array else from_json(bytes(memoryview(raw)))
        )  # not a list: its error
    try:
        request = JobCreate.model_validate(values).to_request()
    except ValidationError as error:
        errors = validation_errors(error.errors(include_url=False))
        raise Problem(422, "The job is not valid", errors=errors) from error
    if not array:
        return request
    assert raw is not None
    return dataclasses.replace(request, items=readers.array_items(memoryview(raw)))


def _refuse_non_finite(items: bytes) -> None:
    """msgspec passes the items' bytes through unread, and they are read one at a time later:
    name any NaN, Infinity or overflowing number among them now, by index (only when the bytes
    hold something that could be one)."""
    try:
        found = jsonvalues.non_finite(from_json(items), "items")
    except ValueError:
        return  # not JSON: said when the items are read
    if found:
        errors = [{"field": path, "message": jsonvalues.MESSAGE} for path in found]
        raise Problem(422, "The job is not valid", errors=errors)


def not_json(body: bytes | bytearray, error: Exception) -> Problem:
    """Why a body msgspec refused is not JSON: 422 naming each NaN, Infinity or overflowing
    number by its path when that is all that is wrong (`items[3]`, `params.x`), else 400."""
    if jsonvalues.suspicious(bytes(body)):
        try:
            found = jsonvalues.non_finite(from_json(body, allow_partial=False), "")
        except ValueError:
            found = []
        if found:
            errors = [{"field": path.lstrip("."), "message": jsonvalues.MESSAGE} for path in found]
            return Problem(422, "The job is not valid", errors=errors)
    if isinstance(error, msgspec.ValidationError):  # JSON, but not an object
        errors = [{"field": "body", "message": str(error)}]
        return Problem(422, "The job is not valid", errors=errors)
    reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
    return Problem(400, f"The body is not JSON: {shorten(reason)}", title="Body is not JSON")


def streamed_request(request: Request, format: readers.Format, settings: Settings) -> JobRequest:
    """The job the query parameters describe, its items read from the body as it arrives.
    Iterate its items only in a worker thread (`run_in_threadpool`): they come from the event
    loop through anyio's portal."""
    create = _query_job(request)
    body = readers.buffered(_body_parts(request), settings.max_input_bytes)
    items = readers.read_items(body, format, settings.max_item_bytes)
    return dataclasses.replace(create.to_request(), items=items)


def as_query_fields(errors: list[dict[str, object]]) -> None:
    """Rename, in place, the fields of a JSON body's webhook object to the query parameters
    that carry them with a streamed body (`webhook.url` to `webhook_url`)."""
    for entry in errors:
        field = entry.get("field")
        if isinstance(field, str) and field.startswith("webhook."):
            entry["field"] = field.replace("webhook.", "webhook_", 1)


def _query_job(request: Request) -> JobCreate:
    fields: dict[str, Any] = {}
    webhook: dict[str, str] = {}
    for name, value in request.query_params.items():
        if name in WEBHOOK_PARAMETERS:
            webhook[WEBHOOK_PARAMETERS[name]] = value
        elif name == "params":
            fields[name] = _json_parameter(name, value)
        elif name in ("items", "items_url", "items_format", "webhook"):
            raise Problem(422, "The job is not valid", errors=[_not_here(name)])
        else:
            fields[name] = value
    if webhook:
        fields["webhook"] = webhook
    try:
        # Query values are strings: read as their fields' types (lax), unlike a JSON body.
        return JobCreate.model_validate({**fields, "items": []}, strict=False)
    except ValidationError as error:
        errors = validation_errors(error.errors(include_url=False))
        as_query_fields(errors)
        raise Problem(422, "The job is not valid", errors=errors) from error


def _json_parameter(name: str, value: str) -> Any:
    try:
        return from_json(value)
    except ValueError as error:
        message = f"not JSON: {error}"
        errors = [{"field": name, "message": message}]
        raise Problem(422, "The job is not valid", errors=errors) from error


def _not_here(name: str) -> dict[str, str]:
    message = "the body holds the items; this parameter belongs to a JSON body"
    if name == "webhook":
        message = "give webhook_url (and webhook_secret) instead"
    return {"field": name, "message": message}


def _body_parts(request: Request) -> Iterator[bytes]:
    """The body's parts as they arrive, for a worker thread: each is awaited on the event loop
    through anyio's portal, so the thread blocks while the client is slow, never the loop."""
    stream = request.stream()

    async def next_part() -> bytes | None:
        return await anext(stream, None)

    while (part := anyio.from_thread.run(next_part)) is not None:
        if part:
            yield part
