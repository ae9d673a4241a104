"""The asyncio client: the same operations as `Client`, built by the same `calls`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

import anyio
import httpx
from httpx_sse import aconnect_sse

from fanout.client import calls
from fanout.client.errors import raise_for_problem
from fanout.client.items import Format
from fanout.schemas import ItemResult, JobPublic, JobsPublic, TasksPublic

T = TypeVar("T")


class AsyncClient:
    """`Client` for asyncio: every method is a coroutine, `results` and `watch` async
    iterators."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        options = calls.http_options(url, api_key, timeout, headers)
        self.http = httpx.AsyncClient(transport=transport, **options)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def _send(self, call: calls.Call[T]) -> T:
        return call.parse(await self.http.send(call.request(self.http)))

    async def submit(
        self,
        task: str,
        items: Iterable[Any] | None = None,
        *,
        items_file: str | Path | None = None,
        items_format: Format | None = None,
        params: dict[str, Any] | None = None,
        webhook: str | None = None,
        webhook_secret: str | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> JobPublic:
        """As `Client.submit`."""
        call = calls.submit(
            task,
            items,
            items_file,
            items_format,
            idempotency_key,
            webhook,
            webhook_secret,
            {"params": params, **options},
        )
        return await self._send(call)

    async def get(self, job_id: str) -> JobPublic:
        return await self._send(calls.get(job_id))

    async def list(
        self, status: str | None = None, cursor: str | None = None, limit: int | None = None
    ) -> JobsPublic:
        return await self._send(calls.list_jobs(status, cursor, limit))

    async def cancel(self, job_id: str) -> JobPublic:
        return await self._send(calls.cancel(job_id))

    async def redrive(self, job_id: str) -> JobPublic:
        return await self._send(calls.redrive(job_id))

    async def set_max_concurrency(self, job_id: str, value: int) -> JobPublic:
        return await self._send(calls.set_max_concurrency(job_id, value))

    async def tasks(self) -> TasksPublic:
        return await self._send(calls.tasks())

    async def _open(self, call: calls.Call[None]) -> httpx.Response:
        response = await self.http.send(call.request(self.http), stream=True)
        if not response.is_success:
            await response.aread()
            await response.aclose()
            call.parse(response)
        return response

    async def results(self, job_id: str) -> AsyncIterator[ItemResult]:
        """As `Client.results`."""
        response = await self._open(calls.results(job_id))
        try:
            async for line in response.aiter_lines():
                if (result := calls.result_line(line)) is not None:
                    yield result
        finally:
            await response.aclose()

    async def download_results(self, job_id: str, out: IO[bytes]) -> int:
        response = await self._open(calls.results(job_id))
        written = 0
        try:
            async for block in response.aiter_bytes():
                written += out.write(block)
        finally:
            await response.aclose()
        return written

    async def watch(self, job_id: str, timeout: float | None = None) -> AsyncIterator[JobPublic]:
        """As `Client.watch`."""
        cursor = calls.EventCursor(job_id, timeout)
        while not cursor.ended:
            error = None
            try:
                async for job in self._stream(cursor):
                    yield job
            except httpx.TransportError as failure:
                error = failure
            if not cursor.ended:
                await anyio.sleep(cursor.dropped(error))

    async def _stream(self, cursor: calls.EventCursor) -> AsyncIterator[JobPublic]:
        headers = cursor.headers()
        async with aconnect_sse(self.http, "GET", cursor.path, headers=headers) as source:
            if source.response.status_code == 204:  # the stream had already ended
                cursor.ended = True
                yield await self.get(cursor.path.split("/")[2])
                return
            if not source.response.is_success:
                await source.response.aread()
                raise_for_problem(source.response)
            async for event in source.aiter_sse():
                if (job := cursor.read(event)) is not None:
                    yield job

    async def wait(
        self,
        job_id: str,
        progress: Callable[[JobPublic], object] | None = None,
        timeout: float | None = None,
    ) -> JobPublic:
        """As `Client.wait`."""
        job: JobPublic | None = None
        async for job in self.watch(job_id, timeout):
            if progress is not None:
                progress(job)
        assert job is not None, "a watch ends with the ended job"
        return job
