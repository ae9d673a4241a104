"""The options `fanout serve` and `fanout worker` share. Each help text names the variable it
overrides and its default; the choices of Settings' literals are enums, so Typer lists them and
refuses any other value in one line."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


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
Port = Annotated[
    int | None, typer.Option(help="Port to listen on, 0 for a free one [FANOUT_PORT; 8000].")
]
PortFile = Annotated[
    Path | None,
    typer.Option(
        envvar="FANOUT_PORT_FILE",
        help="Write the port listened on to this file once it is bound [FANOUT_PORT_FILE].",
    ),
]
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
