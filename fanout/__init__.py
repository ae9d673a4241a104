"""fanout: a job service for the fan-out/fan-in pattern."""

from fanout.errors import Retry
from fanout.tasks import reducer, task

__all__ = ["Retry", "reducer", "task"]
