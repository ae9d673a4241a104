"""The Typer app every command module registers on, the console they print to, and how they
read settings and report a mistake in them: one line, no traceback."""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from fanout import __version__
from fanout.settings import Settings

# A traceback's locals would print the settings, API keys included.
app = typer.Typer(
    help="fanout: fan a job's items out to workers and the results back in.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    # Click's plain usage errors: the message on one line, not wrapped in a box.
    rich_markup_mode=None,
)
console = Console(stderr=True)
# Click's exit status for a usage error; 1 is for a failure at run time (e.g. port in use).
USAGE = 2


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


def fail(message: str, code: int = USAGE) -> NoReturn:
    """Print `fanout: error: <message>` as one line on stderr (never wrapped) and exit."""
    typer.echo(f"fanout: error: {message}", err=True)
    raise typer.Exit(code)


def settings_from(**overrides: Any) -> Settings:
    """Settings from the environment, with the command line's options (those given) on top; a
    bad value exits with one line per mistake, naming the option or variable it came from."""
    # Enum choices go in as their plain values, as the environment's would.
    given = {k: getattr(v, "value", v) for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as error:
        for line in _mistakes(error, set(given)):
            typer.echo(f"fanout: error: {line}", err=True)
        raise typer.Exit(USAGE) from None


def _mistakes(error: ValidationError, options: set[str]) -> list[str]:
    lines = []
    for mistake in error.errors(include_url=False):
        field = str(mistake["loc"][0])
        source = f"--{field.replace('_', '-')}" if field in options else f"FANOUT_{field.upper()}"
        message = mistake["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {message} (got {mistake['input']!r})")
    return lines
