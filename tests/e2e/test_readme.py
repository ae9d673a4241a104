"""The README's code blocks, run as written: its files saved in a fresh project directory, its
`fanout serve` started there by the console script (no PYTHONPATH), then each command block
(curl and jq, the Python client) run against it. The one liberty: the port, since 8000 may be
taken here (the server binds port 0 and writes the port it got to FANOUT_PORT_FILE);
`localhost:8000` and `127.0.0.1:8000` become the server's address.

.ci/run runs the two install commands (`start`, `test`) in brand-new virtual environments.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Launcher, Process, Server
from tests.readme import Block, blocks

BIN = Path(sys.executable).parent
# Each block's commands wait for their job with a loop of their own; bound them here.
BLOCK_TIMEOUT = 120
ROLES = {"start", "test", "file", "serve", "run", "output"}


def test_every_code_block_is_run_or_says_what_checks_it() -> None:
    for block in blocks():
        assert block.role in ROLES or block.role.startswith("not run: "), (
            f"README.md line {block.line}: say what this block is, in a comment above it:"
            f" <!-- readme: ROLE --> with ROLE one of {sorted(ROLES)} or 'not run: <why, and"
            " what checks it instead>'"
        )


@pytest.fixture
def readme_server(fanout: Launcher, tmp_path: Path) -> Server:
    """The README's files in a project directory, and its `serve` block running there."""
    project = tmp_path / "project"
    project.mkdir()
    for block in blocks():
        if block.role == "file":
            (project / block.name).write_text(block.code)
    [serve] = [block for block in blocks() if block.role == "serve"]
    # Port 0 and a port file, through the environment: the block's command line is the README's.
    port_file = tmp_path / "readme-serve.port"
    env = fanout.env(
        {
            "PYTHONPATH": "",
            "FANOUT_PORT": "0",
            "FANOUT_PORT_FILE": str(port_file),
            "FANOUT_WORKERS": "2",
        }
    )
    env.pop("FANOUT_TASKS")
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    log = tmp_path / "readme-serve.log"
    process = Process("readme serve", [], env, log, program=["bash", "-c", serve.code], cwd=project)
    fanout.started.append(process)
    port = process.bound_port(port_file)
    server = Server(process, f"http://127.0.0.1:{port}", project / ".fanout")
    fanout.servers.append(server)
    server.wait_healthy()
    return server


def run(block: Block, server: Server) -> list[Any]:
    """Run one command block against the server; what it printed, one JSON value a line when
    it prints JSON."""
    address = server.url.removeprefix("http://")
    code = block.code.replace("localhost:8000", address).replace("127.0.0.1:8000", address)
    program = ["bash", "-euo", "pipefail", "-c", code] if block.lang == "sh" else [sys.executable]
    done = subprocess.run(
        program,
        input=code if block.lang == "python" else None,
        cwd=server.data_dir.parent,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
    )
    assert done.returncode == 0, f"README.md line {block.line} failed:\n{done.stderr}"
    lines = done.stdout.splitlines()
    if block.lang == "sh":
        return [json.loads(line) for line in lines]
    return lines


def test_the_readme_runs_as_written(readme_server: Server) -> None:
    first_job, task_job, client = [block for block in blocks() if block.role == "run"]

    status, *items = run(first_job, readme_server)
    assert status == {"status": "succeeded", "counts": status["counts"]}
    assert status["counts"]["succeeded"] == 3
    assert [(item["index"], item["status"]) for item in items] == [
        (0, "succeeded"),
        (1, "succeeded"),
        (2, "succeeded"),
    ]

    assert run(task_job, readme_server) == [{"status": "succeeded", "result": 22.0}]

    printed = run(client, readme_server)
    assert printed[-2 - 3 : -1 - 3] == ["3 / 3"]  # the last progress report, then the results
    assert [line.split()[:2] for line in printed[-4:-1]] == [
        ["0", "succeeded"],
        ["1", "succeeded"],
        ["2", "succeeded"],
    ]
    assert "'field': 'items[0]'" in printed[-1]
