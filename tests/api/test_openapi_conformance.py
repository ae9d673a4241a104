"""Schemathesis over the OpenAPI document: every answer's status, content type, headers and body
must be what the document declares for its operation, and none may be a 500. Bounded: a fixed
number of generated cases per operation (about a minute in all), derandomized so a run repeats.

Driven through schemathesis' Python API (an operation's Hypothesis strategy) rather than its
pytest plugin, whose lazily loaded schemas need a fixture the plugin cannot reach here."""

from __future__ import annotations

from typing import Any

import hypothesis
import schemathesis
from schemathesis import GenerationMode, checks
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case
from schemathesis.schemas import APIOperation

from fanout.api.app import create_app
from fanout.service import Fanout
from fanout.settings import Settings

CASES_PER_OPERATION = 60
# Status codes, content types, headers and bodies against the document, and no 500. Not
# "positive data acceptance": a body can match the schema and still name no registered task, or
# hold items the task's input type refuses (its schema is published per task at GET /tasks), and
# that is a 422 the document declares.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


def fuzz(
    operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode, ran: dict[str, int]
) -> None:
    """Run the operation's generated cases; raise at the first that fails a check."""

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=CASES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def check(case: Case[Any]) -> None:
        ran[f"{operation.label} ({mode.value})"] += 1
        case.call_and_validate(checks=CHECKS)

    check()


def test_every_answer_is_what_the_openapi_document_declares(
    settings: Settings, service: Fanout
) -> None:
    # Schemathesis' ASGI client sends `Host: testserver`: served like a loopback name here.
    app = create_app(settings.model_copy(update={"allowed_hosts": ["testserver"]}), service)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    ran: dict[str, int] = {}
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            label = f"{operation.label} ({mode.value})"
            ran[label] = 0
            try:
                fuzz(operation, mode, ran)
            except hypothesis.errors.Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing of this operation to get wrong
            except (Exception, BaseExceptionGroup) as failure:  # the first of each, all reported
                failures[label] = f"{type(failure).__name__}: {failure}"

    print(f"schemathesis: {sum(ran.values())} cases, {len(failures)} failing: {ran}")
    assert len(ran) >= 18
    assert failures == {}, "\n\n".join(f"{k}: {v}" for k, v in failures.items())
