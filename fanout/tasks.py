"""The task and reducer registries: `@task` and `@reducer`, and importing user modules."""

from __future__ import annotations

import importlib
import inspect
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_type_hints, overload

from pydantic import TypeAdapter

from fanout.errors import TaskModuleError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class TaskDef:
    name: str
    fn: Callable[..., Any]
    input_type: Any
    output_type: Any
    is_async: bool
    takes_params: bool
    max_attempts: int | None
    timeout: float | None

    @property
    def items_adapter(self) -> TypeAdapter[list[Any]]:
        return _list_adapter(self.input_type)

    @property
    def output_adapter(self) -> TypeAdapter[Any]:
        return _adapter(self.output_type)

    def schemas(self) -> dict[str, Any]:
        return {
            "input_schema": _adapter(self.input_type).json_schema(),
            "output_schema": self.output_adapter.json_schema(mode="serialization"),
        }


_TASKS: dict[str, TaskDef] = {}
_REDUCERS: dict[str, Callable[[list[Any]], Any]] = {}
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}
_LIST_ADAPTERS: dict[Any, TypeAdapter[list[Any]]] = {}


def _adapter(tp: Any) -> TypeAdapter[Any]:
    if tp not in _ADAPTERS:
        _ADAPTERS[tp] = TypeAdapter(tp)
    return _ADAPTERS[tp]


def _list_adapter(tp: Any) -> TypeAdapter[list[Any]]:
    if tp not in _LIST_ADAPTERS:
        _LIST_ADAPTERS[tp] = TypeAdapter(list[tp])
    return _LIST_ADAPTERS[tp]


def _define(
    fn: Callable[..., Any], name: str | None, max_attempts: int | None, timeout: float | None
) -> TaskDef:
    hints = get_type_hints(fn)
    params = list(inspect.signature(fn).parameters)
    if not params:
        raise TypeError(f"task {fn.__name__} must take its item as the first argument")
    return TaskDef(
        name=name or fn.__name__,
        fn=fn,
        input_type=hints.get(params[0], Any),
        output_type=hints.get("return", Any),
        is_async=inspect.iscoroutinefunction(fn),
        takes_params=len(params) > 1,
        max_attempts=max_attempts,
        timeout=timeout,
    )


@overload
def task(fn: F, /) -> F: ...


@overload
def task(
    *, name: str | None = None, max_attempts: int | None = None, timeout: float | None = None
) -> Callable[[F], F]: ...


def task(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
) -> F | Callable[[F], F]:
    """Register a sync or async function as a task. Its first parameter's type is the item type,
    its return type the output type; an optional second parameter receives the job's params."""

    def register(f: F) -> F:
        definition = _define(f, name, max_attempts, timeout)
        _TASKS[definition.name] = definition
        return f

    return register(fn) if fn is not None else register


@overload
def reducer(fn: F, /) -> F: ...


@overload
def reducer(*, name: str | None = None) -> Callable[[F], F]: ...


def reducer(fn: F | None = None, /, *, name: str | None = None) -> F | Callable[[F], F]:
    """Register a function of the ordered list of succeeded outputs as a named reducer."""

    def register(f: F) -> F:
        _REDUCERS[name or f.__name__] = f
        return f

    return register(fn) if fn is not None else register


def get_task(name: str) -> TaskDef | None:
    return _TASKS.get(name)


def get_reducer(name: str) -> Callable[[list[Any]], Any] | None:
    return _REDUCERS.get(name)


def all_tasks() -> list[TaskDef]:
    return sorted(_TASKS.values(), key=lambda t: t.name)


def all_reducers() -> list[str]:
    return sorted(_REDUCERS)


def load(modules: Iterable[str], app_dir: Path | None = None) -> None:
    """Import the built-ins and each user module, which register tasks as a side effect. Modules
    are looked for in `app_dir` first (put first on `sys.path`, as uvicorn's `--app-dir` does),
    then among the installed packages. Raises `TaskModuleError` naming the module, where it was
    looked for and why it failed."""
    importlib.import_module("fanout.builtins")
    where = str(app_dir.resolve()) if app_dir is not None else None
    if where is not None and where not in sys.path:
        sys.path.insert(0, where)
    for module in modules:
        _import(module, where)


def _import(module: str, where: str | None) -> None:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or not (module == error.name or module.startswith(error.name + ".")):
            raise TaskModuleError(_failed(module, error)) from error
        looked = f"{where} (--app-dir/FANOUT_APP_DIR) or " if where else ""
        raise TaskModuleError(
            f"no module named {module!r} (--tasks/FANOUT_TASKS) in {looked}the installed packages"
        ) from error
    except Exception as error:
        raise TaskModuleError(_failed(module, error)) from error


def _failed(module: str, error: Exception) -> str:
    """The module was found but raised: what, and where in the user's code, in one line."""
    why = f"{type(error).__name__}: {error}"
    return f"task module {module!r} failed to import: {why} ({_origin(error)})"


def _origin(error: Exception) -> str:
    """Where the error was raised: the file and line of the user's code, in one line."""
    if isinstance(error, SyntaxError) and error.filename:
        return f"{error.filename}:{error.lineno}"
    frames = traceback.extract_tb(error.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "no traceback"
