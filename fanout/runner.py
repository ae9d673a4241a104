"""Run one chunk's items through a task: retries with backoff, timeouts, one outcome line each."""

from __future__ import annotations

import asyncio
import functools
import random
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from msgspec import structs
from pydantic import ValidationError
from pydantic_core import to_json

from fanout import intake
from fanout.errors import Retry, TaskTimeout
from fanout.models import ChunkResult
from fanout.tasks import TaskDef


@dataclass(frozen=True)
class RunPolicy:
    max_attempts: int
    async_concurrency: int
    backoff_base: float
    backoff_max: float

    def delay(self, attempt: int, error: BaseException) -> float:
        """Exponential backoff with full jitter, or the delay the task asked for."""
        if isinstance(error, Retry) and error.delay is not None:
            return error.delay
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))


class _Failure:
    def __init__(self, error: BaseException, attempts: int) -> None:
        self.error = error
        self.attempts = attempts

    def line(self, index: int) -> bytes:
        error = {
            "type": type(self.error).__name__,
            "message": str(self.error),
            "attempts": self.attempts,
        }
        return to_json({"index": index, "status": "failed", "error": error})


def _retryable(error: BaseException) -> bool:
    return isinstance(error, Retry | TaskTimeout | TimeoutError)


def _alarm(seconds: float | None) -> AbstractContextManager[None]:
    """Interrupt a sync task after `seconds` (SIGALRM, as rq's death penalty does); only in the
    main thread, where Python delivers signals."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        return _NO_ALARM  # most tasks have none: a generator per item doubled a no-op's cost
    return _armed(seconds)


_NO_ALARM = nullcontext()


@contextmanager
def _armed(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise TaskTimeout(f"item ran past the task's timeout of {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # someone else's alarm was set: give it back what is left of it
            left = outer - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))


class _Tally:
    """Retries made while running one chunk: its usage is items run plus retries."""

    retries = 0


def _call_sync(
    task: TaskDef, item: Any, params: dict[str, Any], policy: RunPolicy, tally: _Tally
) -> Any:
    attempt = 0
    while True:
        attempt += 1
        try:
            with _alarm(task.timeout):
                return task.fn(item, params) if task.takes_params else task.fn(item)
        except Exception as error:
            if not _retryable(error) or attempt >= policy.max_attempts:
                return _Failure(error, attempt)
            tally.retries += 1
            time.sleep(policy.delay(attempt, error))


async def _within(call: Awaitable[Any], seconds: float | None) -> Any:
    """Await `call`, failing with TaskTimeout past `seconds`, as the sync path's alarm does (a
    TimeoutError the task raises itself stays what it is)."""
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            return await call
    except TimeoutError:
        if scope.expired():
            raise TaskTimeout(f"item ran past the task's timeout of {seconds} s") from None
        raise


async def _call_async(
    task: TaskDef,
    item: Any,
    params: dict[str, Any],
    policy: RunPolicy,
    gate: asyncio.Semaphore,
    tally: _Tally,
) -> Any:
    attempt = 0
    async with gate:
        while True:
            attempt += 1
            try:
                call = task.fn(item, params) if task.takes_params else task.fn(item)
                return await _within(call, task.timeout)
            except Exception as error:
                if not _retryable(error) or attempt >= policy.max_attempts:
                    return _Failure(error, attempt)
                tally.retries += 1
                await asyncio.sleep(policy.delay(attempt, error))


async def _gather(
    task: TaskDef, items: list[Any], params: dict[str, Any], policy: RunPolicy, tally: _Tally
) -> list[Any]:
    gate = asyncio.Semaphore(policy.async_concurrency)
    calls = (_call_async(task, i, params, policy, gate, tally) for i in items)
    return await asyncio.gather(*calls)


def _validated(task: TaskDef, items_json: bytes) -> list[Any]:
    """Items were validated at submit; a worker whose task changed since fails just the bad ones."""
    try:
        return task.items_adapter.validate_json(items_json)
    except ValidationError:
        adapter = task.items_adapter
        items: list[Any] = []
        for raw in _read_deep(items_json):
            if not intake.readable(raw):  # a chunk cut without re-reading its items at submit
                items.append(_Failure(ValueError(intake.TOO_DEEP), 0))
                continue
            try:
                items.append(adapter.validate_python([raw])[0])
            except ValidationError as error:
                items.append(_Failure(error, 0))
        return items


def _read_deep(items_json: bytes) -> list[Any]:
    """A chunk's items whatever their depth: msgspec reads JSON about 1000 levels deep,
    pydantic_core 200 (an item deeper than that fails alone, above, not the whole chunk)."""
    import msgspec

    items: list[Any] = msgspec.json.decode(items_json)
    return items


def run_chunk(
    task: TaskDef, start: int, items_json: bytes, params: dict[str, Any], policy: RunPolicy
) -> ChunkResult:
    began = time.monotonic()
    tally = _Tally()
    items = _validated(task, items_json)
    valid = [item for item in items if not isinstance(item, _Failure)]
    if task.is_async:
        ran = iter(asyncio.run(_gather(task, valid, params, policy, tally)))
        outputs = [item if isinstance(item, _Failure) else next(ran) for item in items]
    else:
        outputs = [
            item if isinstance(item, _Failure) else _call_sync(task, item, params, policy, tally)
            for item in items
        ]
    result = _encode(_dumper(task), start, outputs)
    attempts = len(valid) + tally.retries
    return structs.replace(result, attempts=attempts, seconds=time.monotonic() - began)


def _dumper(task: TaskDef) -> Callable[[Any], bytes]:
    """The output type's serializer itself (TypeAdapter.dump_json only forwards to it, and that
    costs more than serializing a small output), made to raise on an output the type can't hold:
    by default pydantic only warns and writes it anyway. An `Any` output can't mismatch, so it
    skips that check, which costs ~2 µs an item."""
    serialize = task.output_adapter.serializer.to_json
    if task.output_type is Any:
        return serialize
    return functools.partial(serialize, warnings="error")


def _encode(dump: Callable[[Any], bytes], start: int, outputs: list[Any]) -> ChunkResult:
    lines, failed = [], 0
    for index, output in enumerate(outputs, start):
        if not isinstance(output, _Failure):
            try:
                lines.append(
                    b'{"index":%d,"status":"succeeded","output":%b}' % (index, dump(output))
                )
                continue
            except Exception as error:  # the task returned something its output type can't hold
                output = _Failure(error, 1)
        failed += 1
        lines.append(output.line(index))
    return ChunkResult(succeeded=len(outputs) - failed, failed=failed, lines=b"\n".join(lines))


def failed_chunk(start: int, end: int, error: BaseException, attempts: int) -> ChunkResult:
    """Every item of a chunk failed with the same error (a lost worker, an unknown task)."""
    result = _encode(lambda _: b"", start, [_Failure(error, attempts)] * (end - start))
    return structs.replace(result, attempts=attempts * (end - start))
