"""`fanout serve` and `fanout worker`: the service's processes."""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fanout.cli.app import app, console, settings_from

if TYPE_CHECKING:
    from fanout.service import Fanout
    from fanout.workers.local import Loop

Host = Annotated[str | None, typer.Option(help="Address to listen on [FANOUT_HOST].")]
Port = Annotated[int | None, typer.Option(help="Port to listen on [FANOUT_PORT].")]
Workers = Annotated[
    int | None, typer.Option("--workers", "-w", help="Worker processes [FANOUT_WORKERS; CPUs].")
]
BackendName = Annotated[
    str | None,
    typer.Option("--backend", help="sqlite, or aws: DynamoDB + SQS + S3 [FANOUT_BACKEND; sqlite]."),
]
DataDir = Annotated[
    Path | None, typer.Option(help="Where the SQLite file lives [FANOUT_DATA_DIR; .fanout].")
]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    host: Host = None,
    port: Port = None,
    workers: Workers = None,
    data_dir: DataDir = None,
    backend: BackendName = None,
) -> None:
    """Run the API, N worker processes, the webhook notifier and the reconciler (and, on AWS,
    the stream aggregator)."""
    import uvicorn

    from fanout.api.app import create_app
    from fanout.api.keys import parse_keys
    from fanout.wiring import build
    from fanout.workers.local import Loop, Supervisor
    from fanout.workers.notifier import Notifier

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = settings_from(
        host=host, port=port, workers=workers, data_dir=data_dir, backend=backend
    )
    # "," parses to no keys; keys in SSM count as keys (the API refuses requests if it is empty).
    keyed = bool(settings.api_keys_parameter or parse_keys(settings.api_keys))
    if not keyed and not _is_loopback(settings.host):
        console.print(
            f"[yellow]No API keys configured (FANOUT_API_KEYS): listening on 127.0.0.1"
            f" instead of {settings.host}.[/]"
        )
        settings = settings.model_copy(update={"host": "127.0.0.1"})
    elif not keyed:
        console.print(
            "[yellow]No API keys configured (FANOUT_API_KEYS): every caller is one"
            " tenant, so the server listens on loopback only.[/]"
        )
    service = build(settings)
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
    where = f"table {settings.table}" if settings.backend == "aws" else settings.data_dir.resolve()
    console.print(
        f"fanout serving on http://{settings.host}:{settings.port} with"
        f" {settings.workers} workers; data in {where}"
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, service),
            host=settings.host,
            port=settings.port,
            access_log=False,
            log_level="warning",
        )
    )
    # uvicorn re-raises the signal that stopped it once it has shut down; with these handlers
    # in place that lands here harmlessly, and the workers are stopped below.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    try:
        server.run()
    finally:
        for loop in loops:
            loop.stop()
        close()
        supervisor.stop()
        console.print("fanout stopped; unfinished jobs resume at the next start.")


@app.command()
def worker(workers: Workers = None, data_dir: DataDir = None, backend: BackendName = None) -> None:
    """Run worker processes only, against the same data directory as a `fanout serve`. On AWS,
    also the stream aggregator, notifier and reconciler: every Lambda function but the API."""
    from fanout.wiring import build
    from fanout.workers.local import Supervisor

    settings = settings_from(workers=workers, data_dir=data_dir, backend=backend)
    service = build(settings)
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
    where = f"table {settings.table}" if settings.backend == "aws" else settings.data_dir.resolve()
    console.print(f"fanout worker: {settings.workers} processes on {where}")
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
