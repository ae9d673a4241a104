"""The Typer app every command module registers on, and the console they print to."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

from fanout.settings import Settings

app = typer.Typer(
    help="fanout: fan a job's items out to workers and the results back in.", no_args_is_help=True
)
console = Console(stderr=True)


def settings_from(**overrides: Any) -> Settings:
    """Settings from the environment, with the command line's options (those given) on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
