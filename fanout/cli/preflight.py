"""What `fanout serve` and `fanout worker` check before they print their banner or start a
process: settings, the listening address and its keys, the task modules, the port, the store.
Each failure is one line naming what to change (`fail`), never a traceback."""

from __future__ import annotations

import ipaddress
import os
import socket
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from fanout import tasks
from fanout.cli.app import fail
from fanout.errors import FanoutError, TaskModuleError
from fanout.settings import Settings

if TYPE_CHECKING:
    from fanout.service import Fanout

# The status of a failure at run time, as opposed to a usage error's 2.
RUNTIME = 1


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def keyed(settings: Settings) -> bool:
    """Keys are configured: in the environment ("," is none), or in SSM (the API then refuses
    requests while that parameter holds none)."""
    from fanout.api.keys import parse_keys

    return bool(settings.api_keys_parameter or parse_keys(settings.api_keys))


def require_keys_off_loopback(settings: Settings) -> None:
    """With no API keys every caller is one tenant, so only this machine may call: refuse any
    other address rather than quietly listening somewhere else than asked."""
    if not keyed(settings) and not is_loopback(settings.host):
        fail(
            f"refusing to listen on {settings.host} without API keys: set"
            " FANOUT_API_KEYS=<key>:<tenant>[,...] (clients then send `Authorization: Bearer"
            " <key>`), or listen on 127.0.0.1"
        )


def load_tasks(settings: Settings) -> Settings:
    """Import the task modules now, from the app dir made absolute (the worker processes get
    these settings), so a missing module is reported before anything starts."""
    settings = settings.model_copy(update={"app_dir": settings.app_dir.resolve()})
    try:
        tasks.load(settings.tasks, settings.app_dir)
    except TaskModuleError as error:
        fail(str(error))
    return settings


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the banner so a port in use is reported first (as
    uvicorn binds it: SO_REUSEADDR, IPv6 when the host is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        fail(
            f"cannot listen on {host}:{port}: {error.strerror or error}; choose another port"
            " with --port or FANOUT_PORT",
            RUNTIME,
        )
    # Listening now, not when uvicorn starts: a client that learnt the port from the banner or
    # the port file is queued until the app answers, never refused.
    sock.listen()
    return sock


def announce_port(sock: socket.socket, port_file: Path | None) -> int:
    """The port `sock` is bound to (the system's choice for port 0), also written to
    `port_file` if given: whole, by a rename, so a reader never sees half a number. A program
    that starts `fanout serve --port 0` reads it there instead of guessing a free port, which
    another process could take between the guess and the bind."""
    port: int = sock.getsockname()[1]
    if port_file is not None:
        partial = port_file.with_name(f"{port_file.name}.partial")
        try:
            partial.write_text(f"{port}\n")
            os.replace(partial, port_file)
        except OSError as error:
            fail(f"cannot write the port to {port_file}: {error.strerror or error}", RUNTIME)
    return port


def open_service(settings: Settings) -> Fanout:
    """The service on its backend, or one line saying why the store could not be opened."""
    from fanout.wiring import build

    try:
        return build(settings)
    except ModuleNotFoundError as error:
        if settings.backend == "aws" and error.name in ("boto3", "botocore", "mangum"):
            fail(f"the aws backend needs {error.name}: pip install 'fanout[aws]'", RUNTIME)
        raise
    except (OSError, sqlite3.Error) as error:
        fail(f"cannot open the store in {settings.data_dir.resolve()}: {error}", RUNTIME)
    except FanoutError as error:
        fail(f"cannot open the {settings.backend} backend: {error}", RUNTIME)
