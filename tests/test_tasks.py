"""The task and reducer registries: what `@task` and `@reducer` register, and the JSON schemas
`GET /tasks` publishes. Test tasks are registered under names starting with `test_`."""

from __future__ import annotations

import hashlib
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from pydantic import BaseModel, ValidationError

from fanout import reducer, task, tasks
from fanout.api.app import create_app
from fanout.errors import TaskModuleError
from fanout.settings import Settings
from fanout.wiring import build
from fanout.workers import chunk_worker


class Point(BaseModel):
    x: int
    y: int


class Shifted(BaseModel):
    x: int
    y: int
    by: int


@pytest.fixture(autouse=True, scope="module")
def builtins_loaded() -> None:
    """The built-ins register on import; run alone, this file would otherwise not import them."""
    tasks.load([])


def registered(name: str) -> tasks.TaskDef:
    definition = tasks.get_task(name)
    assert definition is not None, f"no task {name!r}"
    return definition


def test_a_decorated_function_is_registered_under_its_name_and_returned_unchanged() -> None:
    def test_tasks_plain(item: int) -> str:
        return str(item)

    decorated = task(test_tasks_plain)

    assert decorated is test_tasks_plain
    assert decorated(3) == "3"
    definition = registered("test_tasks_plain")
    assert definition.fn is test_tasks_plain
    assert (definition.input_type, definition.output_type) == (int, str)
    assert (definition.is_async, definition.takes_params) == (False, False)
    assert (definition.max_attempts, definition.timeout) == (None, None)


def test_name_max_attempts_and_timeout_can_be_given() -> None:
    @task(name="test_tasks_shift", max_attempts=5, timeout=2.5)
    def shift(point: Point, params: dict[str, Any]) -> Shifted:
        return Shifted(x=point.x + params["by"], y=point.y, by=params["by"])

    definition = registered("test_tasks_shift")
    assert tasks.get_task("shift") is None
    assert (definition.max_attempts, definition.timeout) == (5, 2.5)
    assert (definition.input_type, definition.output_type) == (Point, Shifted)
    assert definition.takes_params
    assert shift(Point(x=1, y=2), {"by": 3}) == Shifted(x=4, y=2, by=3)


def test_an_async_function_is_registered_as_async() -> None:
    @task(name="test_tasks_async")
    async def halve(item: float) -> float:
        return item / 2

    definition = registered("test_tasks_async")
    assert definition.is_async
    assert (definition.input_type, definition.output_type) == (float, float)


def test_a_task_without_type_hints_takes_and_returns_anything() -> None:
    task(name="test_tasks_untyped")(lambda item: item)

    definition = registered("test_tasks_untyped")
    assert (definition.input_type, definition.output_type) == (Any, Any)
    assert definition.schemas() == {"input_schema": {}, "output_schema": {}}
    assert definition.items_adapter.validate_python([1, "a", None]) == [1, "a", None]


def test_a_function_without_parameters_cannot_be_a_task() -> None:
    def nothing() -> int:
        return 1

    with pytest.raises(TypeError, match="must take its item"):
        task(name="test_tasks_nothing")(nothing)
    assert tasks.get_task("test_tasks_nothing") is None


def test_registering_a_name_again_replaces_the_task() -> None:
    @task(name="test_tasks_again")
    def first(item: int) -> int:
        return item

    @task(name="test_tasks_again")
    def second(item: str) -> str:
        return item

    assert registered("test_tasks_again").fn is second
    assert registered("test_tasks_again").input_type is str


def test_schemas_describe_the_input_and_output_types() -> None:
    @task(name="test_tasks_schemas")
    def shift(point: Point) -> Shifted:
        return Shifted(x=point.x, y=point.y, by=0)

    schemas = registered("test_tasks_schemas").schemas()

    assert schemas["input_schema"]["type"] == "object"
    assert set(schemas["input_schema"]["properties"]) == {"x", "y"}
    assert set(schemas["input_schema"]["required"]) == {"x", "y"}
    assert set(schemas["output_schema"]["properties"]) == {"x", "y", "by"}
    assert registered("sha256").schemas() == {
        "input_schema": {"type": "string"},
        "output_schema": {"type": "string"},
    }


def test_items_are_validated_against_the_input_type_naming_each_bad_index() -> None:
    @task(name="test_tasks_points")
    def norm(point: Point) -> int:
        return abs(point.x) + abs(point.y)

    adapter = registered("test_tasks_points").items_adapter
    good = adapter.validate_python([{"x": 1, "y": 2}, {"x": "3", "y": 4}])
    assert good == [Point(x=1, y=2), Point(x=3, y=4)]

    with pytest.raises(ValidationError) as invalid:
        adapter.validate_python([{"x": 1, "y": 2}, {"x": 1}, "nope", {"x": 0, "y": 0}])
    assert sorted({error["loc"][0] for error in invalid.value.errors()}) == [1, 2]


def test_every_registered_task_is_listed_by_name() -> None:
    @task(name="test_tasks_listed")
    def listed(item: int) -> int:
        return item

    names = [t.name for t in tasks.all_tasks()]

    assert names == sorted(names)
    assert {"echo", "sleep", "sha256", "test_tasks_listed"} <= set(names)


def test_the_builtin_tasks_are_typed_as_documented() -> None:
    assert registered("sleep").is_async
    assert (registered("echo").input_type, registered("echo").output_type) == (Any, Any)
    assert registered("sha256").takes_params


def test_a_reducer_is_registered_under_its_name_or_the_given_one() -> None:
    @reducer
    def test_tasks_longest(outputs: list[Any]) -> Any:
        return max(outputs, key=len)

    @reducer(name="test_tasks_joined")
    def joined(outputs: list[Any]) -> str:
        return "".join(outputs)

    assert tasks.get_reducer("test_tasks_longest") is test_tasks_longest
    assert tasks.get_reducer("test_tasks_joined") is joined
    assert tasks.get_reducer("joined") is None
    assert {"test_tasks_longest", "test_tasks_joined"} <= set(tasks.all_reducers())


@pytest.mark.parametrize(
    ("name", "outputs", "value"),
    [
        ("sum", [1, 2, 3.5], 6.5),
        ("sum", [], 0),
        ("count", ["a", "b"], 2),
        ("min", [3, 1, 2], 1),
        ("min", [], None),
        ("max", [3, 1, 2], 3),
    ],
)
def test_the_builtin_reducers_compute_their_value(
    name: str, outputs: list[Any], value: Any
) -> None:
    reduce = tasks.get_reducer(name)

    assert reduce is not None
    assert reduce(outputs) == value


def test_loading_imports_the_builtins_and_each_listed_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"test_tasks_module_{uuid.uuid4().hex}"
    (tmp_path / f"{module}.py").write_text(
        "from fanout import task\n\n"
        f"@task(name={module!r})\n"
        "def shout(item: str) -> str:\n"
        "    return item.upper()\n"
    )
    monkeypatch.syspath_prepend(tmp_path)

    tasks.load([module])

    assert registered(module).fn("a") == "A"
    assert tasks.get_task("echo") is not None


@pytest.fixture
def restored_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """`tasks.load` puts the app dir on `sys.path`; undo that after the test."""
    monkeypatch.setattr(sys, "path", [*sys.path])


@pytest.mark.usefixtures("restored_sys_path")
def test_loading_a_missing_module_fails_loudly_naming_it_and_where_it_looked(
    tmp_path: Path,
) -> None:
    missing = f"test_tasks_missing_{uuid.uuid4().hex}"
    with pytest.raises(TaskModuleError, match=f"'{missing}'.* in {tmp_path} .*installed packages"):
        tasks.load([missing], tmp_path)


@pytest.mark.usefixtures("restored_sys_path")
def test_a_module_in_the_app_dir_is_found_first(tmp_path: Path) -> None:
    name = f"test_tasks_app_dir_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        f"from fanout import task\n\n@task(name={name!r})\ndef f(n: int) -> int:\n    return n\n"
    )
    tasks.load([name], tmp_path)

    assert tasks.get_task(name) is not None


def iterated_sha256(text: str, rounds: int) -> str:
    """The README's `sha256` task, written out again: SHA-256 of the item's UTF-8, then of each
    digest's bytes, `rounds` times, as hex."""
    digest = text.encode()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def test_the_readme_s_first_job_returns_the_iterated_sha256_of_each_item(
    settings: Settings,
) -> None:
    """The README's first example, through the HTTP API: `sha256` of "a", "b", "c" with 1000
    rounds (and "é", for its UTF-8), each output the digest computed here with hashlib, in
    input order."""
    body = {"task": "sha256", "items": ["a", "b", "c", "é"], "params": {"rounds": 1000}}
    service = build(settings)

    async def run() -> list[dict[str, Any]]:
        transport = httpx.ASGITransport(app=create_app(settings, service))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as api:
            created = await api.post("/jobs", json=body)
            assert created.status_code == 202, created.text
            job_id = created.json()["id"]
            while await anyio.to_thread.run_sync(chunk_worker.poll_once, service):
                pass
            assert (await api.get(f"/jobs/{job_id}")).json()["status"] == "succeeded"
            items: list[dict[str, Any]] = (await api.get(f"/jobs/{job_id}/results")).json()["items"]
            return items

    results = anyio.run(run)

    assert [r["output"] for r in results] == [
        iterated_sha256(text, 1000) for text in ["a", "b", "c", "é"]
    ]
    assert results[0]["output"] != iterated_sha256("a", 1)  # the rounds were applied
    # One round of "a" is the digest every SHA-256 implementation gives (FIPS 180-4).
    assert iterated_sha256("a", 1) == (
        "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
    )
