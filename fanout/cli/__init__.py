"""The `fanout` command: one Typer app, its commands grouped by module.

- `fanout.cli.serve`: `fanout serve` and `fanout worker`, the processes of the service;
- `fanout.cli.aws`: `fanout aws ...`, the AWS backend's resources;
- `fanout.cli.jobs`: `fanout submit`, `jobs`, `status`, `watch`, `results`, `cancel`, `redrive`,
  the client's commands against a running service.
"""

from fanout.cli import aws, jobs, serve
from fanout.cli.app import app

__all__ = ["app", "aws", "jobs", "serve"]
