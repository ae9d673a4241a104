"""`fanout aws ...`: the AWS backend's resources."""

from __future__ import annotations

import typer

from fanout.cli.app import app, settings_from

aws = typer.Typer(help="The AWS backend's resources.", no_args_is_help=True)
app.add_typer(aws, name="aws")


@aws.command()
def bootstrap() -> None:
    """Create the table (stream, TTL), queues (dead-letter redrive) and bucket on the
    configured endpoint (AWS_ENDPOINT_URL), for emulators and trials; prints their settings.
    Production uses the SAM template in infra/."""
    from fanout.backends.aws import Clients
    from fanout.backends.aws.bootstrap import bootstrap as create

    for name, value in create(settings_from(backend="aws"), Clients.create()).items():
        typer.echo(f"{name}={value}")
