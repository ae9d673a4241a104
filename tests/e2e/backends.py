"""`fanout serve` on either backend, for tests that hold on both: the embedded SQLite file, or
AWS on the moto server (bootstrapped by `fanout aws bootstrap`, as a user would)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from tests.e2e.harness import REPO, Launcher, Server
from tests.e2e.test_aws_serve import aws_environment

BACKENDS = ["sqlite", "aws"]


def serve(fanout: Launcher, backend: str, workers: int = 2, **env: str) -> Server:
    return fanout.serve(workers=workers, env={**environment(fanout, backend), **env})


def environment(fanout: Launcher, backend: str) -> dict[str, str]:
    """What a `fanout serve` on `backend` needs; on AWS, fresh resources on the moto server
    (serving again with the same environment finds the same ones, as a restart would)."""
    if backend == "sqlite":
        return {}
    environment = aws_environment(fanout, f"t{uuid.uuid4().hex[:12]}-{os.getpid()}")
    bootstrapped = subprocess.run(
        [sys.executable, "-m", "fanout", "aws", "bootstrap"],
        env=environment,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    settings = dict(line.split("=", 1) for line in bootstrapped.stdout.splitlines())
    return {**environment, **settings, "FANOUT_BACKEND": "aws"}
