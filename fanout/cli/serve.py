"""`fanout serve` and `fanout worker`: the service's processes."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from fanout import __version__, logs, metrics
from fanout.cli import preflight
from fanout.cli.app import app, console, settings_from
from fanout.cli.options import (
    AccessLog,
    AppDir,
    Backend,
    DataDir,
    Format,
    Host,
    Level,
    Port,
    PortFile,
    Tasks,
    Workers,
)
from fanout.settings import Settings

if TYPE_CHECKING:
    from fanout.service import Fanout

log = logging.getLogger("fanout.cli")
BACKGROUND_START = 5.0  # seconds serve waits for its background process before answering


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
    port_file: PortFile = None,
) -> None:
    """Run the API, N worker processes, and a process for the webhook notifier, the reconciler
    and the sweeps (on AWS also the stream aggregator)."""
    import uvicorn

    from fanout.api.app import create_app
    from fanout.api.protocol import guarded_protocol
    from fanout.workers.local import BACKGROUND, Supervisor

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
    _count_across_processes()  # before a task module can import prometheus-client
    logs.configure(settings)
    settings = preflight.load_tasks(settings)
    sock = preflight.bind(settings.host, settings.port)
    settings = settings.model_copy(update={"port": preflight.announce_port(sock, port_file)})
    service = preflight.open_service(settings)
    if not preflight.keyed(settings):
        say(
            settings,
            "No API keys configured (FANOUT_API_KEYS): every caller is one tenant, so the"
            " server listens on loopback only.",
        )
    supervisor = Supervisor(settings, service, settings.workers)
    housekeeper = Supervisor(settings, service, 1, kind=BACKGROUND)
    _reclaim_at_start(settings, service)
    supervisor.start()
    housekeeper.start()
    say(
        settings,
        f"fanout {__version__} serving on http://{settings.host}:{settings.port} with"
        f" {settings.workers} workers; data in {service.where}",
    )
    api = create_app(settings, service, live_workers=supervisor.live)
    # Built now, while the background process starts, not by the first request with a body
    # (the guard reads each operation's body types from it): ~100 ms the first POST paid.
    api.openapi()
    server = uvicorn.Server(
        uvicorn.Config(
            api,
            access_log=settings.access_log,
            log_config=None,  # logs.configure has set up uvicorn's loggers
            log_level=settings.log_level,
            http=guarded_protocol(settings.header_timeout, settings.min_body_rate),
        )
    )
    if not housekeeper.wait_ready(BACKGROUND_START):
        say(settings, "The background process (webhooks, sweeps) is not up yet; serving anyway.")
    # uvicorn re-raises the signal that stopped it once it has shut down; with these handlers
    # in place that lands here harmlessly, and the workers are stopped below.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    # Only now, with the workers and the background process started: they keep the priority
    # fanout serve was given. On Linux a thread's niceness is its own; the threads the API starts
    # from here on (its threadpools) take this thread's.
    os.nice(settings.api_nice)
    try:
        server.run(sockets=[sock])
    finally:
        housekeeper.stop()
        supervisor.stop()
        if port_file is not None:
            port_file.unlink(missing_ok=True)
        say(settings, "fanout stopped; unfinished jobs resume at the next start.")


def _count_across_processes() -> None:
    """A fresh directory for the metrics of this server and its worker processes, removed at
    exit, unless PROMETHEUS_MULTIPROC_DIR names one already (e.g. to count the processes of a
    `fanout worker` beside it too)."""
    if metrics.DIRECTORY not in os.environ:
        directory = Path(tempfile.mkdtemp(prefix="fanout-metrics-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        metrics.use_directory(directory)


def _reclaim_at_start(settings: Settings, service: Fanout) -> None:
    """Hand back what workers dead before this start held (a crash of the whole tree): those
    silent long enough now, the rest at the lease sweep's next look."""
    try:
        service.reclaim()
    except Exception as error:
        say(settings, f"Could not hand back the chunks of dead workers yet: {error}")


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
    """Run worker processes, against the same data as a `fanout serve`, with the notifier,
    reconciler and lease sweep (on AWS also the stream aggregator): every Lambda function but
    the API. Beside a `serve`, both claim each webhook attempt, so none goes out twice."""
    from fanout.workers.local import Supervisor, background

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
    parts = background(service)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    supervisor.start()
    for part in parts:
        part.start()
    say(settings, f"fanout worker: {settings.workers} processes on {service.where}")
    while not stop.wait(1.0):
        pass
    for part in reversed(parts):
        part.stop()
    supervisor.stop()
