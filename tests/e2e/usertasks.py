"""Tasks as a user would write them, loaded by the server under test through FANOUT_TASKS.

The tests compute the outputs they expect on their own rather than by calling these functions,
so a task that runs wrongly (or twice into the same result) cannot agree with itself.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from fanout import Retry, task


class Reading(BaseModel):
    sensor: str
    value: int


class Summary(BaseModel):
    label: str
    square: int


@task
def summarize(reading: Reading) -> Summary:
    """A typed task: the items are validated as `Reading`s at submit time."""
    return Summary(label=f"{reading.sensor}:{reading.value}", square=reading.value**2)


@task
def pause_then_triple(n: int, params: dict[str, Any]) -> int:
    """Takes `params["pause"]` seconds per item, so a job lasts long enough to be interrupted."""
    time.sleep(float(params["pause"]))
    return 3 * n


@task
def stall_once(n: int, params: dict[str, Any]) -> int:
    """The first run of item `params["stall"]` leaves its worker's pid in `params["dir"]`/pid,
    takes `params["stall_for"]` seconds and then leaves the file `woke`; every other run takes
    `params["pause"]` seconds."""
    if n == params["stall"]:
        folder = Path(params["dir"])
        try:
            (folder / "stalled").touch(exist_ok=False)  # kept: a later run of the item is quick
        except FileExistsError:
            pass
        else:
            (folder / "pid.tmp").write_text(str(os.getpid()))
            (folder / "pid.tmp").rename(folder / "pid")
            time.sleep(float(params["stall_for"]))
            (folder / "woke").touch()
    time.sleep(float(params["pause"]))
    return 3 * n


@task
def poison(n: int, params: dict[str, Any]) -> int:
    """Kills its own worker process on the item `params["poison"]`, as a segfault would."""
    if n == params["poison"]:
        os._exit(1)
    return n + 1


@task(timeout=0.2, max_attempts=2)
def hang(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task(timeout=0.2, max_attempts=2)
async def hang_async(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@task(max_attempts=1)
def gated(n: int, params: dict[str, Any]) -> int:
    """Items from `params["gate_at"]` on wait (up to a minute) until the file `params["dir"]`/go
    exists: a test holds a job running for as long as it needs, then lets it finish."""
    if n >= params.get("gate_at", 0):
        go = Path(params["dir"]) / "go"
        deadline = time.monotonic() + 60
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return n * 10


@task(max_attempts=2)
def fail_until_fixed(n: int, params: dict[str, Any]) -> int:
    """Items listed in `params["fail"]` fail until the file `params["dir"]`/fixed exists; each
    run of an item appends its index to `params["dir"]`/runs, so a test sees what ran, then
    takes `params["pause"]` seconds (default none)."""
    folder = Path(params["dir"])
    with (folder / "runs").open("a") as runs:
        runs.write(f"{n}\n")
    time.sleep(params.get("pause", 0))
    if n in params["fail"] and not (folder / "fixed").exists():
        raise ValueError(f"item {n} is broken")
    return n * 10


@task(max_attempts=3)
def retry_once(n: int, params: dict[str, Any]) -> int:
    """Asks to be retried on its first attempt at each item (a file per item remembers it)."""
    tried = Path(params["dir"]) / f"tried-{n}"
    if not tried.exists():
        tried.touch()
        raise Retry("first attempt", delay=0)
    return n


@task(max_attempts=1)
def fail_odd(n: int) -> int:
    """Fails the odd items, once each: a job with outcomes of both kinds."""
    if n % 2:
        raise ValueError(f"{n} is odd")
    return n


@task(max_attempts=1)
def hang_on(n: int, params: dict[str, Any]) -> int:
    """Hangs its worker on the item `params["hang"]` (sleeps `params["for"]` seconds, past any
    chunk timeout a test sets): every time, or with `params["dir"]` only the first time, leaving
    that worker's pid in `dir`/pid. The other items are quick."""
    if n == params["hang"] and _first_time(params.get("dir")):
        time.sleep(float(params["for"]))
    return 3 * n


def _first_time(folder: str | None) -> bool:
    if folder is None:
        return True
    try:
        (Path(folder) / "hung").touch(exist_ok=False)
    except FileExistsError:
        return False
    (Path(folder) / "pid.tmp").write_text(str(os.getpid()))
    (Path(folder) / "pid.tmp").rename(Path(folder) / "pid")
    return True
