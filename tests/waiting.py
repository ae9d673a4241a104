"""Waiting for a condition with a deadline: how tests let time pass without sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 5.0) -> T:
    """Call `predicate` until it returns something truthy and return that; fail the test if it
    has not by the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
