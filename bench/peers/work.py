"""The peers' per-item functions: the same work as fanout's built-ins (fanout/builtins.py), as
plain module-level functions that Celery registers as tasks and `multiprocessing` can pickle."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any


def echo(item: Any) -> Any:
    return item


def sleep(seconds: float) -> float:
    # Blocking here; Celery's gevent pool monkey-patches time.sleep to yield instead.
    time.sleep(seconds)
    return seconds


def sha256(text: str, rounds: int = 1) -> str:
    digest = text.encode()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


FUNCTIONS: dict[str, Callable[..., Any]] = {"echo": echo, "sleep": sleep, "sha256": sha256}


def call(task: str, item: Any, params: dict[str, Any]) -> Any:
    return FUNCTIONS[task](item, **params)
