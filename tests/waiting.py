"""Waiting for a condition with a deadline: how tests let time pass without sleeping on a guess."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | None],
    timeout: float = 5.0,
    what: str = "the condition",
    every: float = 0.005,
) -> T:
    """Poll `condition` every `every` seconds until it returns something truthy and return that;
    fail the test naming `what` when the deadline passes first."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)
