"""fanout: a job service for the fan-out/fan-in pattern."""

from fanout.errors import Retry
from fanout.tasks import reducer, task

# The one place the version is written: pyproject.toml reads it (setuptools' `attr:`, without
# importing the package), and so do `fanout --version` and the OpenAPI document.
__version__ = "0.1.0"

__all__ = ["Retry", "__version__", "reducer", "task"]
