"""fanout: a job service for the fan-out/fan-in pattern."""

import sys

from fanout.errors import Retry
from fanout.tasks import reducer, task

# Importing httpx imports its command-line client as well (click, rich and pygments, where they
# are installed, as typer installs them): ~5 MB and ~55 ms in each process that sends webhooks,
# for a `main` fanout never calls. A None entry makes that one import fail, and httpx then
# defines a stub in its place. The `httpx` command is a process of its own, without fanout.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None: "not importable"

# The one place the version is written: pyproject.toml reads it (setuptools' `attr:`, without
# importing the package), and so do `fanout --version` and the OpenAPI document.
__version__ = "0.1.0"

__all__ = ["Retry", "__version__", "reducer", "task"]
