"""`fanout serve` and `fanout worker`: the service's processes."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fanout import __version__, logs
from fanout.cli import preflight
from fanout.cli.app import app, console, settings_from
from fanout.settings import Settings

if TYPE_CHECKING:
    from fanout.service import Fanout
    from fanout.workers.local import Loop

log = logging.getLogger("fanout.cli")


# The choices of Settings' literals, as enums so that Typer lists them and refuses others.
class BackendName(StrEnum):
    SQLITE = "sqlite"
    AWS = "aws"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


Host = Annotated[str | None, typer.Option(help="Address to listen on [FANOUT_HOST; 127.0.0.1].")]
Port = Annotated[int | None, typer.Option(help="Port to listen on [FANOUT_PORT; 8000].")]
Workers = Annotated[
    int | None, typer.Option("--workers", "-w", help="Worker processes [FANOUT_WORKERS; CPUs].")
]
Backend = Annotated[
    BackendName | None,
    typer.Option(help="sqlite, or aws: DynamoDB + SQS + S3 [FANOUT_BACKEND; sqlite]."),
]
DataDir = Annotated[
    Path | None, typer.Option(help="Where the SQLite file lives [FANOUT_DATA_DIR; .fanout].")
]
Tasks = Annotated[
    str | None,
    typer.Option(help="Comma-separated modules that register tasks [FANOUT_TASKS]."),
]
AppDir = Annotated[
    Path | None,
    typer.Option(help="Where task modules are looked for first [FANOUT_APP_DIR; the current dir]."),
]
Level = Annotated[
    LogLevel | None, typer.Option(case_sensitive=False, help="[FANOUT_LOG_LEVEL; info].")
]
Format = Annotated[
    LogFormat | None,
    typer.Option(help="text, or json: one object a line [FANOUT_LOG_FORMAT; text]."),
]
AccessLog = Annotated[
    bool | None,
    typer.Option(
        "--access-log/--no-access-log", help="A line per request [FANOUT_ACCESS_LOG; off]."
    ),
]


def say(settings: Settings, message: str) -> None:
    """What a person starting the server reads; a log record when the logs are JSON lines."""
    if settings.log_format == "json":
        log.info(message)
    else:
        console.print(message, soft_wrap=True, highlight=False)


@app.command()
def serve(
    host: Host = None,
    port: Port = None,
    workers: Workers = None,
    data_dir: DataDir = None,
    backend: Backend = None,
    tasks: Tasks = None,
    app_dir: AppDir = None,
    log_level: Level = None,
    log_format: Format = None,
    access_log: AccessLog = None,
) -> None:
    """Run the API, N worker processes, the webhook notifier and the reconciler (and, on AWS,
    the stream aggregator)."""
    import uvicorn

    from fanout.api.app import create_app
    from fanout.workers.local import Loop, Supervisor
    from fanout.workers.notifier import Notifier

    settings = settings_from(
        host=host,
        port=port,
        workers=workers,
        data_dir=data_dir,
        backend=backend,
        tasks=tasks,
        app_dir=app_dir,
        log_level=log_level,
        log_format=log_format,
        access_log=access_log,
    )
    preflight.require_keys_off_loopback(settings)
    logs.configure(settings)
    settings = preflight.load_tasks(settings)
    sock = preflight.bind(settings.host, settings.port)
    service = preflight.open_service(settings)
    if not preflight.keyed(settings):
        say(
            settings,
            "No API keys configured (FANOUT_API_KEYS): every caller is one tenant, so the"
            " server listens on loopback only.",
        )
    supervisor = Supervisor(settings, service, settings.workers)
    if settings.backend == "aws":
        loops, close = _aws_pollers(service)
    else:
        notifier = Notifier(service)
        loops = [Loop("reconciler", settings.reconcile_interval, service.reconcile)]
        close = notifier.stop
        notifier.start()
    supervisor.start()
    for loop in loops:
        loop.start()
    say(
        settings,
        f"fanout {__version__} serving on http://{settings.host}:{settings.port} with"
        f" {settings.workers} workers; data in {_where(settings)}",
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, service),
            access_log=settings.access_log,
            log_config=None,  # logs.configure has set up uvicorn's loggers
            log_level=settings.log_level,
        )
    )
    # uvicorn re-raises the signal that stopped it once it has shut down; with these handlers
    # in place that lands here harmlessly, and the workers are stopped below.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    try:
        server.run(sockets=[sock])
    finally:
        for loop in loops:
            loop.stop()
        close()
        supervisor.stop()
        say(settings, "fanout stopped; unfinished jobs resume at the next start.")


def _where(settings: Settings) -> str:
    if settings.backend == "aws":
        return f"table {settings.table}"
    return str(settings.data_dir.resolve())


@app.command()
def worker(
    workers: Workers = None,
    data_dir: DataDir = None,
    backend: Backend = None,
    tasks: Tasks = None,
    app_dir: AppDir = None,
    log_level: Level = None,
    log_format: Format = None,
) -> None:
    """Run worker processes only, against the same data directory as a `fanout serve`. On AWS,
    also the stream aggregator, notifier and reconciler: every Lambda function but the API."""
    from fanout.workers.local import Supervisor

    settings = settings_from(
        workers=workers,
        data_dir=data_dir,
        backend=backend,
        tasks=tasks,
        app_dir=app_dir,
        log_level=log_level,
        log_format=log_format,
    )
    logs.configure(settings)
    settings = preflight.load_tasks(settings)
    service = preflight.open_service(settings)
    supervisor = Supervisor(settings, service, settings.workers)
    loops: list[Loop] = []
    close: Callable[[], None] = _nothing_to_close
    if settings.backend == "aws":
        loops, close = _aws_pollers(service)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    supervisor.start()
    for loop in loops:
        loop.start()
    say(settings, f"fanout worker: {settings.workers} processes on {_where(settings)}")
    while not stop.wait(1.0):
        pass
    for loop in loops:
        loop.stop()
    close()
    supervisor.stop()


def _nothing_to_close() -> None:
    """The embedded worker has no pollers to close."""


def _aws_pollers(service: Fanout) -> tuple[list[Loop], Callable[[], None]]:
    """The aggregator, notifier and reconciler Lambdas as pollers, and what closes them."""
    from fanout.workers.aws_pollers import NoticePoller, background

    notices = NoticePoller(service)
    return background(service, notices), notices.close
