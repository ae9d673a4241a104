"""The errors the core raises; adapters translate vendor errors into these."""


class FanoutError(Exception):
    """Base class of every error the core raises on purpose."""


class JobNotFound(FanoutError):
    """No such job for this tenant (another tenant's job is not found either)."""


class JobFinished(FanoutError):
    """The job is already terminal, so it cannot be changed."""


class JobNotFinished(FanoutError):
    """The job is still queued or running, so it cannot be redriven yet."""


class NothingToRedrive(FanoutError):
    """Every item of the job succeeded: a redrive would run nothing."""


class InvalidJob(FanoutError):
    """The submission is not acceptable; `errors` names the fields or item indices."""

    def __init__(self, title: str, errors: list[dict[str, object]]) -> None:
        super().__init__(title)
        self.title = title
        self.errors = errors


class JobExists(FanoutError):
    """A job with this id was stored already (an idempotent submit finds it done)."""


class IdempotencyConflict(FanoutError):
    """A request with the same key is still being processed."""


class IdempotencyMismatch(FanoutError):
    """The key was used before with a different request body."""


class InputUnavailable(FanoutError):
    """An `items_url` that cannot be read; `url` is the one asked for."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class InputNotFound(InputUnavailable):
    """No file or object at the `items_url`."""


class InputRefused(InputUnavailable):
    """The `items_url` names something this service does not read: another scheme or bucket,
    a path outside the input directory or a link out of it, or not a regular file."""


class Retry(Exception):
    """Raised by a task to have the item retried with backoff (up to `max_attempts`)."""

    def __init__(self, message: str = "retry requested", *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class TaskTimeout(Exception):
    """An item ran past its task's timeout; retried like `Retry`."""


class BackendError(FanoutError):
    """The backend's service refused or failed a request, after its client's own retries."""


class TaskModuleError(FanoutError):
    """A module listed in FANOUT_TASKS could not be imported; the message says which, where it
    was looked for, and why, in one line."""


class StoreUnavailable(BackendError):
    """The store cannot write now (a full disk, a read-only or failing database): nothing was
    written, and the same call may succeed later."""


class Overloaded(FanoutError):
    """Too much work waits to start (or to be announced) to accept more now: backpressure. The
    caller should retry after `retry_after` seconds."""

    def __init__(self, what: str, count: int, bound: int, retry_after: int) -> None:
        super().__init__(f"{count} {what} wait, at or over the bound of {bound}")
        self.what = what
        self.count = count
        self.bound = bound
        self.retry_after = retry_after


class UploadRefused(FanoutError):
    """An upload URL that does not admit this PUT: not signed here, expired, or used."""
