"""The blocking client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

import httpx
from httpx_sse import connect_sse

from fanout.client import calls
from fanout.client.errors import raise_for_problem
from fanout.client.items import Format
from fanout.schemas import ItemResult, JobPublic, JobsPublic, TasksPublic

T = TypeVar("T")


class Client:
    """The fanout HTTP API from Python. `url` defaults to FANOUT_URL (else
    http://127.0.0.1:8000), `api_key` to FANOUT_API_KEY. Errors raise `APIError` subclasses
    carrying the server's problem details."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        options = calls.http_options(url, api_key, timeout, headers)
        self.http = httpx.Client(transport=transport, **options)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _send(self, call: calls.Call[T]) -> T:
        return call.parse(self.http.send(call.request(self.http)))

    def submit(
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
        """Submit a job of `items`, or of the items in `items_file` (JSON array, JSON Lines or
        CSV; `-` is standard input). `options`: chunk_size, max_concurrency, max_attempts,
        tolerated_failure_count, tolerated_failure_percentage, timeout_seconds, reduce. The
        returned job carries the webhook's secret when the server generated it."""
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
        return self._send(call)

    def get(self, job_id: str) -> JobPublic:
        return self._send(calls.get(job_id))

    def list(
        self, status: str | None = None, cursor: str | None = None, limit: int | None = None
    ) -> JobsPublic:
        """One page of the tenant's jobs, newest first; `next_cursor` fetches the next."""
        return self._send(calls.list_jobs(status, cursor, limit))

    def cancel(self, job_id: str) -> JobPublic:
        return self._send(calls.cancel(job_id))

    def redrive(self, job_id: str) -> JobPublic:
        """Run the failed (and never run) items of an ended job again."""
        return self._send(calls.redrive(job_id))

    def set_max_concurrency(self, job_id: str, value: int) -> JobPublic:
        return self._send(calls.set_max_concurrency(job_id, value))

    def tasks(self) -> TasksPublic:
        return self._send(calls.tasks())

    def results(self, job_id: str) -> Iterator[ItemResult]:
        """Every item's outcome in input order, read as a stream (constant memory)."""
        call = calls.results(job_id)
        response = self.http.send(call.request(self.http), stream=True)
        try:
            call.parse(response)
            for line in response.iter_lines():
                if (result := calls.result_line(line)) is not None:
                    yield result
        finally:
            response.close()

    def download_results(self, job_id: str, out: IO[bytes]) -> int:
        """Copy the results, as JSON Lines, into `out`; returns the bytes written."""
        call = calls.results(job_id)
        written = 0
        response = self.http.send(call.request(self.http), stream=True)
        try:
            call.parse(response)
            for block in response.iter_bytes():
                written += out.write(block)
        finally:
            response.close()
        return written

    def watch(self, job_id: str, timeout: float | None = None) -> Iterator[JobPublic]:
        """The job each time its counts or status change (from `GET /jobs/{id}/events`), ending
        with the job as it ended. A dropped stream is reopened where it left off."""
        cursor = calls.EventCursor(job_id, timeout)
        while not cursor.ended:
            try:
                yield from self._stream(cursor)
                error = None
            except httpx.TransportError as failure:
                error = failure
            if not cursor.ended:
                time.sleep(cursor.dropped(error))

    def _stream(self, cursor: calls.EventCursor) -> Iterator[JobPublic]:
        with connect_sse(self.http, "GET", cursor.path, headers=cursor.headers()) as source:
            if source.response.status_code == 204:  # the stream had already ended
                cursor.ended = True
                yield self.get(cursor.path.split("/")[2])
                return
            raise_for_problem(source.response)
            for event in source.iter_sse():
                if (job := cursor.read(event)) is not None:
                    yield job

    def wait(
        self,
        job_id: str,
        progress: Callable[[JobPublic], object] | None = None,
        timeout: float | None = None,
    ) -> JobPublic:
        """Block until the job ends and return it; `progress` is called with the job whenever
        it changes. Raises TimeoutError after `timeout` seconds."""
        job: JobPublic | None = None
        for job in self.watch(job_id, timeout):
            if progress is not None:
                progress(job)
        assert job is not None, "a watch ends with the ended job"
        return job
