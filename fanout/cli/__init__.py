"""The `fanout` command: one Typer app, its commands grouped by module.

- `fanout.cli.serve`: `fanout serve` and `fanout worker`, the processes of the service;
- `fanout.cli.aws`: `fanout aws ...`, the AWS backend's resources.
"""

from fanout.cli import aws, serve
from fanout.cli.app import app

__all__ = ["app", "aws", "serve"]
