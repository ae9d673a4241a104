"""Blocking calls of the routes, on a thread pool of the app's, handed over in one step.

Starlette's `run_in_threadpool` (anyio's `to_thread.run_sync`) yields to the event loop twice
before its thread starts (a checkpoint, then the capacity limiter), and under the small-job load
of `python -m bench load` a turn of the loop took 20-40 ms: a `POST /jobs` spent ~60 ms of its
~150 ms waiting for its submit to start. `loop.run_in_executor` hands the call to a thread at
once; the answer comes back in one turn, as before. Used for the submit of a JSON body, the hot
blocking call; the rest keep Starlette's way, and so does a streamed body's submit, whose items
are read from the request on the thread through `anyio.from_thread`, which needs AnyIO's threads.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from starlette.requests import Request

P = ParamSpec("P")
T = TypeVar("T")
# As many as anyio's default limiter allows: a submit waits in the store's group commit, so the
# threads are mostly waiting, and each one waiting lets another join the same commit.
THREADS = 40


def pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(THREADS, thread_name_prefix="blocking")


async def off_loop(request: Request, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`call(*args, **kwargs)` on the app's pool; the event loop goes on meanwhile. A request
    cancelled meanwhile (the client went away) leaves the call to finish on its thread, as
    `run_in_threadpool` does."""
    executor: ThreadPoolExecutor = request.app.state.blocking
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, functools.partial(call, *args, **kwargs))
