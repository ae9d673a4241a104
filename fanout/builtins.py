"""Built-in tasks and reducers, for demos, tests and benchmarks."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from fanout.tasks import reducer, task


@task
def echo(item: Any) -> Any:
    """Return the item unchanged: the no-op task."""
    return item


@task
async def sleep(seconds: float) -> float:
    """Sleep for the item's number of seconds without holding a worker: the I/O-bound task."""
    await asyncio.sleep(seconds)
    return seconds


@task
def sha256(text: str, params: dict[str, Any]) -> str:
    """Hex SHA-256 of the item, iterated `params["rounds"]` times (default 1): CPU-bound."""
    digest = text.encode()
    for _ in range(int(params.get("rounds", 1))):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


@reducer
def sum(outputs: list[Any]) -> Any:
    total: Any = 0
    for value in outputs:
        total += value
    return total


@reducer
def count(outputs: list[Any]) -> int:
    return len(outputs)


@reducer(name="min")
def minimum(outputs: list[Any]) -> Any:
    return min(outputs, default=None)


@reducer(name="max")
def maximum(outputs: list[Any]) -> Any:
    return max(outputs, default=None)
