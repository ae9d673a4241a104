"""Taking a job in: checking the request, then reading, validating and spooling its items,
from the request itself or from the file `items_url` names. Nothing is stored here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import urlsplit

from fanout import readers, tasks, webhooks
from fanout.errors import InputUnavailable, InvalidJob
from fanout.intake import Intake
from fanout.service.base import ServiceBase
from fanout.service.submission import JobRequest, Submission


class TakingIn(ServiceBase):
    """The first half of a submit: `take_in`, which stores nothing."""

    def take_in(self, request: JobRequest) -> Submission:
        """The first half of `submit`: check the request, then read, validate and spool every
        item (a stream is read to its end here). Stores nothing; raises InvalidJob. Close the
        submission (a context manager) when done with it."""
        task = self._checked(request)
        return Submission(request, task, self._take_in(task, request))

    def _checked(self, request: JobRequest) -> tasks.TaskDef:
        """The request's task, once its task, reducer and webhook URL are known to be good."""
        task = tasks.get_task(request.task)
        if task is None:
            known = [t.name for t in tasks.all_tasks()]
            message = f"no task named {request.task[:200]!r}"
            raise InvalidJob("Unknown task", [_problem("task", message, known=known)])
        if request.reduce is not None and tasks.get_reducer(request.reduce) is None:
            known = tasks.all_reducers()
            message = f"no reducer named {request.reduce[:200]!r}"
            raise InvalidJob("Unknown reducer", [_problem("reduce", message, known=known)])
        if request.webhook_url is not None:
            try:
                webhooks.check_url(request.webhook_url, self.settings.webhook_allow_networks)
            except webhooks.UnsafeURL as error:
                problem = _problem("webhook.url", str(error))
                raise InvalidJob("Webhook URL refused", [problem]) from error
        return task

    def _take_in(self, task: tasks.TaskDef, request: JobRequest) -> Intake:
        """Every item read (from the request, or as a stream from its `items_url` file),
        validated and spooled. Raises InvalidJob naming the item index or line at fault."""
        intake = Intake(task, self.settings.max_items)
        try:
            self._read(intake, request)
        except BaseException:
            intake.close()
            raise
        return intake

    def _read(self, intake: Intake, request: JobRequest) -> None:
        field = "items" if request.items_url is None else "items_url"
        try:
            if request.items_url is None:
                intake.take(request.items)
                return
            with self._open_input(request.items_url) as stream:
                intake.take(self._items_of(request, stream))
        except readers.Unreadable as error:
            problem = _problem(field, error.message, line=error.line)
            raise InvalidJob("The items cannot be read", [problem]) from error
        except readers.TooLarge as error:
            if request.items_url is None:
                raise  # a request body: the HTTP edge answers 413
            raise InvalidJob("Input file too large", [_problem(field, str(error))]) from error

    def _open_input(self, url: str) -> IO[bytes]:
        if self.backend.inputs is None:
            message = "this deployment reads no input files"
            raise InvalidJob("Input files are not available", [_problem("items_url", message)])
        try:
            return self.backend.inputs.open(url)
        except InputUnavailable as error:
            problem = _problem("items_url", error.reason)
            raise InvalidJob("The input file cannot be read", [problem]) from error

    def _items_of(self, request: JobRequest, stream: IO[bytes]) -> Iterator[Any]:
        url = request.items_url or ""
        format = request.items_format or readers.format_of(urlsplit(url).path or url)
        if format is None:
            message = "name a .json, .jsonl, .ndjson or .csv file, or give items_format"
            raise InvalidJob("Unknown input format", [_problem("items_url", message)])
        limited = readers.limited(stream, self.settings.max_input_bytes)
        return readers.read_items(limited, format, self.settings.max_item_bytes)


def _problem(field: str, message: str, **more: object) -> dict[str, object]:
    """One entry of InvalidJob's errors: the field at fault, and what is wrong with it."""
    return {"field": field, **more, "message": message}
