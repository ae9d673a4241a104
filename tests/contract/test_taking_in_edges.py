"""What `Fanout.take_in` refuses, and how it says so: each refusal is an InvalidJob whose title
and errors become the 422 problem's `title` and `errors` (api/problems.py), so a client can
tell which field or line is at fault and what to do. Checked here on the service itself, each
error exactly: the field, the line where there is one, the message, the known names.

Written to kill mutants `python -m bench mutation` found surviving (issue 13). On the SQLite
service; in tests/contract/ because the mutation run selects this folder already (changing its
selection resets every mutmut verdict).
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
from pydantic_core import from_json

from fanout import readers, tasks, webhooks
from fanout.errors import InvalidJob
from fanout.service import Fanout, JobRequest
from fanout.settings import Settings
from fanout.wiring import build

LONG_NAME = "x" * 300  # a name is quoted up to 200 characters


@pytest.fixture
def inputs(settings: Settings) -> Path:
    settings.inputs.mkdir(parents=True, exist_ok=True)
    (settings.inputs / "items.jsonl").write_bytes(b"1\n2\n")
    (settings.inputs / "items.txt").write_bytes(b"1\n2\n")
    (settings.inputs / "bad.jsonl").write_bytes(b"1\n{oops\n")
    return settings.inputs


def refusal(service: Fanout, **fields: object) -> InvalidJob:
    request = JobRequest(**{"task": "echo", "items": [], "params": {}, **fields})  # type: ignore[arg-type]  # fields typed by JobRequest
    with pytest.raises(InvalidJob) as refused, service.take_in(request):
        pass
    return refused.value


def items_of(service: Fanout, **fields: object) -> list[object]:
    request = JobRequest(**{"task": "echo", "items": [], "params": {}, **fields})  # type: ignore[arg-type]  # as in refusal
    with service.take_in(request) as submission:
        chunks = submission.intake.chunks(100, 1 << 20)
        return [item for chunk in chunks for item in from_json(chunk.items_json)]


def test_an_unknown_task_is_refused_naming_it_and_every_known_task(service: Fanout) -> None:
    error = refusal(service, task=LONG_NAME)

    assert error.title == "Unknown task"
    known = [t.name for t in tasks.all_tasks()]
    assert "echo" in known
    message = f"no task named {LONG_NAME[:200]!r}"
    assert error.errors == [{"field": "task", "known": known, "message": message}]


def test_an_unknown_reducer_is_refused_naming_it_and_every_known_reducer(
    service: Fanout,
) -> None:
    error = refusal(service, reduce=LONG_NAME)

    assert error.title == "Unknown reducer"
    known = tasks.all_reducers()
    assert known
    message = f"no reducer named {LONG_NAME[:200]!r}"
    assert error.errors == [{"field": "reduce", "known": known, "message": message}]


def test_a_webhook_url_outside_the_allowed_networks_is_refused_saying_why(
    service: Fanout, settings: Settings
) -> None:
    error = refusal(service, webhook_url="http://10.0.0.1/hook")

    assert error.title == "Webhook URL refused"
    [problem] = error.errors
    assert problem["field"] == "webhook.url"
    assert "10.0.0.1" in str(problem["message"])
    with pytest.raises(webhooks.UnsafeURL) as unsafe:
        webhooks.check_url("http://10.0.0.1/hook", settings.webhook_allow_networks)
    assert problem["message"] == str(unsafe.value)


def test_a_deployment_without_input_files_refuses_an_items_url(settings: Settings) -> None:
    service = build(settings)
    without = Fanout(dataclasses.replace(service.backend, inputs=None), settings)

    error = refusal(without, items_url="items.jsonl")

    assert error.title == "Input files are not available"
    message = "this deployment reads no input files"
    assert error.errors == [{"field": "items_url", "message": message}]


@pytest.mark.usefixtures("inputs")
def test_an_items_url_that_cannot_be_opened_is_refused_with_the_reason(service: Fanout) -> None:
    error = refusal(service, items_url="missing.jsonl")

    assert error.title == "The input file cannot be read"
    assert error.errors == [{"field": "items_url", "message": "no such file"}]


@pytest.mark.usefixtures("inputs")
def test_an_items_url_of_no_known_format_is_refused_unless_the_format_is_given(
    service: Fanout,
) -> None:
    error = refusal(service, items_url="items.txt")

    assert error.title == "Unknown input format"
    message = "name a .json, .jsonl, .ndjson or .csv file, or give items_format"
    assert error.errors == [{"field": "items_url", "message": message}]
    assert items_of(service, items_url="items.txt", items_format="jsonl") == [1, 2]


def test_the_format_of_an_items_url_is_read_from_its_name(service: Fanout, inputs: Path) -> None:
    assert items_of(service, items_url="items.jsonl") == [1, 2]
    assert items_of(service, items_url=(inputs / "items.jsonl").as_uri()) == [1, 2]


@pytest.mark.usefixtures("inputs")
def test_an_unreadable_line_is_refused_naming_the_field_and_the_line(service: Fanout) -> None:
    from_file = refusal(service, items_url="bad.jsonl")
    body = readers.read_items(io.BytesIO(b"1\n{oops\n"), "jsonl", 1000)
    from_body = refusal(service, items=body)

    message = "not JSON: key must be a string at line 1 column 2"
    assert from_file.title == from_body.title == "The items cannot be read"
    assert from_file.errors == [{"field": "items_url", "line": 2, "message": message}]
    assert from_body.errors == [{"field": "items", "line": 2, "message": message}]


@pytest.mark.usefixtures("inputs")
def test_an_input_file_over_the_limit_is_refused_and_a_body_over_it_is_left_to_the_edge(
    settings: Settings,
) -> None:
    """A request body over its limit is the HTTP edge's 413; a file is a 422 on items_url."""
    service = build(settings.model_copy(update={"max_input_bytes": 3}))

    error = refusal(service, items_url="items.jsonl")
    body = readers.read_items(readers.limited(io.BytesIO(b"1\n2\n"), 3), "jsonl", 1000)
    with pytest.raises(readers.TooLarge):
        service.take_in(JobRequest(task="echo", items=body, params={}))

    assert error.title == "Input file too large"
    assert error.errors == [{"field": "items_url", "message": "over the limit of 3 bytes"}]
