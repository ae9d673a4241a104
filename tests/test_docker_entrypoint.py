"""The image's entry script: `fanout serve` by default, Lambda's runtime client on Lambda."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "docker-entrypoint"


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """Stand-ins for `python` and `fanout` that print what they were run with."""
    for name in ("python", "fanout"):
        program = tmp_path / name
        program.write_text(f'#!/bin/sh\necho {name} "$@"\n')
        program.chmod(0o755)
    return tmp_path


def entry(bin_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", str(SCRIPT), *args],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
    )


def test_outside_lambda_the_image_runs_the_cli_it_is_given(bin_dir: Path) -> None:
    assert entry(bin_dir, "serve").stdout == "fanout serve\n"
    assert entry(bin_dir, "worker", "-w", "2").stdout == "fanout worker -w 2\n"


def test_on_lambda_the_command_names_the_handler_for_the_runtime_client(bin_dir: Path) -> None:
    handler = "fanout.workers.lambda_handlers.chunk_worker"
    run = entry(bin_dir, handler, AWS_LAMBDA_RUNTIME_API="x:9001")
    assert run.stdout == f"python -m awslambdaric {handler}\n"


def test_on_lambda_a_handler_variable_wins_over_the_default_command(bin_dir: Path) -> None:
    handler = "fanout.api.lambda_handler.handler"
    run = entry(bin_dir, "serve", AWS_LAMBDA_RUNTIME_API="x:9001", HANDLER=handler)
    assert run.stdout == f"python -m awslambdaric {handler}\n"


def test_on_lambda_without_a_handler_the_image_says_so_and_fails(bin_dir: Path) -> None:
    run = entry(bin_dir, "serve", AWS_LAMBDA_RUNTIME_API="x:9001")
    assert run.returncode == 64
    assert run.stdout == ""
    assert "name a handler" in run.stderr
