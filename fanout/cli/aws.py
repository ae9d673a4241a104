"""`fanout aws ...`: the AWS backend's resources, and an emulator to run them on a laptop."""

from __future__ import annotations

import os
import signal
import threading
from typing import Annotated

import typer

from fanout.cli.app import app, console, settings_from

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


@aws.command()
def emulator(
    host: Annotated[str, typer.Option(help="Address to listen on (keep it loopback).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on; 0 for a free one.")] = 5000,
    create: Annotated[
        bool, typer.Option("--bootstrap/--no-bootstrap", help="Also create fanout's resources.")
    ] = True,
) -> None:
    """Run DynamoDB (with Streams), SQS, S3 and SSM on this machine: moto's server with
    DynamoDB's requests serialized, so conditional writes are atomic as on AWS (a plain moto
    server lets two racing writers both pass a condition, and fan-in double counts). Prints
    the variables that point `fanout serve --backend aws` at it; runs until Ctrl-C."""
    from fanout.backends.aws.emulator import CREDENTIALS, Emulator

    server = Emulator(host, port)
    endpoint = server.start()
    variables = {"AWS_ENDPOINT_URL": endpoint, **CREDENTIALS, "FANOUT_BACKEND": "aws"}
    try:
        if create:
            variables |= _bootstrap(variables)
        for name, value in variables.items():
            typer.echo(f"{name}={value}")
        console.print(f"AWS emulator on {endpoint}; export the variables above. Ctrl-C stops it.")
        _wait_for_a_signal()
    finally:
        server.stop()


def _bootstrap(variables: dict[str, str]) -> dict[str, str]:
    """fanout's resources on the emulator, named by the FANOUT_ settings in the environment."""
    from fanout.backends.aws import Clients
    from fanout.backends.aws.bootstrap import bootstrap as create

    os.environ.update(variables)  # boto3 reads the endpoint and credentials from here
    settings = settings_from(backend="aws")
    if settings.bucket is None:  # large inputs, results and outputs need one
        settings = settings.model_copy(update={"bucket": settings.table})
    return create(settings, Clients.create())


def _wait_for_a_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
