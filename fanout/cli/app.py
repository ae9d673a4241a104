"""The Typer app every command module registers on, and the console they print to."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from fanout import __version__
from fanout.settings import Settings

# A traceback's locals would print the settings, API keys included.
app = typer.Typer(
    help="fanout: fan a job's items out to workers and the results back in.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"fanout {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """fanout: fan a job's items out to workers and the results back in."""


def settings_from(**overrides: Any) -> Settings:
    """Settings from the environment, with the command line's options (those given) on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
