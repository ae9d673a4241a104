"""The OpenAPI document as a contract a generated client can use: explicit operation ids, the
Bearer scheme (Swagger UI's Authorize button), the `Location` of a new job, the defaults this
server really applies, and request examples that succeed in Swagger UI's "Try it out".

The error responses are `fanout.api.error_responses`' part of the same document.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRoute

from fanout.settings import Settings

SCHEME = "bearerAuth"
# Route function -> operation id (what a generated client names its functions); a route not
# listed gets its function's name in camelCase.
OPERATION_IDS = {
    "create_job": "createJob",
    "list_jobs": "listJobs",
    "get_job": "getJob",
    "update_job": "updateJob",
    "cancel_job": "cancelJob",
    "redrive_job": "redriveJob",
    "job_results": "getJobResults",
    "job_events": "getJobEvents",
    "list_tasks": "listTasks",
    "healthz": "getHealth",
    "readyz": "getReadiness",
    "get_metrics": "getMetrics",
}
# Open to every caller, whatever keys are configured.
PUBLIC = {"getHealth", "getReadiness", "getMetrics"}
CREATE_EXAMPLES = {
    "sha256": {
        "summary": "Hash three strings (a built-in task)",
        "value": {"task": "sha256", "items": ["a", "b", "c"], "params": {"rounds": 1000}},
    },
    "echo": {
        "summary": "Echo items, two a chunk, summed by a reducer",
        "value": {"task": "echo", "items": [1, 2, 3, 4], "chunk_size": 2, "reduce": "sum"},
    },
}
PATCH_EXAMPLE = {
    "max_concurrency": {"summary": "Widen the window", "value": {"max_concurrency": 4}}
}
TIMESTAMPS = {
    "JobPublic": ("created_at", "started_at", "finished_at"),
    "WebhookAttempt": ("at",),
    "JobEvent": ("timestamp",),
}


def operation_id(route: APIRoute) -> str:
    """FastAPI's `generate_unique_id_function`: the route's operation id."""
    return OPERATION_IDS.get(route.name) or re.sub(r"_(\w)", lambda m: m[1].upper(), route.name)


def describe(document: dict[str, Any], settings: Settings, keyed: bool) -> None:
    """Complete FastAPI's document in place."""
    _security(document, keyed)
    operations = {
        operation["operationId"]: operation
        for path in document["paths"].values()
        for operation in path.values()
    }
    _location(operations["createJob"])
    _examples(operations["createJob"], CREATE_EXAMPLES)
    _examples(operations["updateJob"], PATCH_EXAMPLE)
    schemas = document["components"]["schemas"]
    _defaults(schemas["JobCreate"]["properties"], settings)
    for model, fields in TIMESTAMPS.items():
        for field in fields:
            _date_time(schemas.get(model, {}).get("properties", {}).get(field))


def _security(document: dict[str, Any], keyed: bool) -> None:
    """Bearer API keys. Without keys configured the server asks for none, so a key is optional
    there (`{}` is the alternative of no scheme at all)."""
    document["components"]["securitySchemes"] = {
        SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key from FANOUT_API_KEYS (`key:tenant`); each key is a tenant.",
        }
    }
    document["security"] = [{SCHEME: []}] if keyed else [{SCHEME: []}, {}]
    for path in document["paths"].values():
        for operation in path.values():
            if operation["operationId"] in PUBLIC:
                operation["security"] = []


def _location(operation: dict[str, Any]) -> None:
    operation["responses"]["202"]["description"] = "Accepted: the job is durably stored."
    operation["responses"]["202"]["headers"] = {
        "Location": {
            "description": "The new job: `/jobs/{id}`.",
            "schema": {"type": "string", "format": "uri-reference"},
        }
    }


def _examples(operation: dict[str, Any], examples: dict[str, Any]) -> None:
    operation["requestBody"]["content"]["application/json"]["examples"] = examples


def _defaults(properties: dict[str, Any], settings: Settings) -> None:
    """What this server does when a field is left out, with its own settings' values."""
    said = {
        "chunk_size": "Items a chunk; left out, sized to the task's measured time per item, at"
        f" most {settings.max_chunk_items} items (FANOUT_MAX_CHUNK_ITEMS) and"
        f" {settings.max_chunk_bytes} bytes (FANOUT_MAX_CHUNK_BYTES).",
        "max_concurrency": "Chunks of this job queued or running at once; default"
        f" {settings.default_max_concurrency} (FANOUT_DEFAULT_MAX_CONCURRENCY).",
        "max_attempts": "Attempts per item (a task's own `max_attempts` wins); default"
        f" {settings.default_max_attempts} (FANOUT_DEFAULT_MAX_ATTEMPTS).",
        "tolerated_failure_count": "Failed items the job may have and still succeed; left out"
        " (and no percentage), any failure fails the job.",
        "tolerated_failure_percentage": "As tolerated_failure_count, as a percentage of the items.",
        "timeout_seconds": "The job fails if it runs longer; default none.",
    }
    for name, text in said.items():
        if name in properties:
            properties[name]["description"] = text


def _date_time(schema: dict[str, Any] | None) -> None:
    """An RFC 3339 timestamp (`2026-01-01T00:00:00Z`), nullable or not."""
    if schema is None:
        return
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "string":
            option["format"] = "date-time"
