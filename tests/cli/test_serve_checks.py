"""`fanout serve`'s mistakes, as a user makes them: each is one line on stderr naming the option
or variable to change, before the banner and before any process starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import Process
from tests.waiting import wait_until

# Well past a clean start-up's refusal; a server that did start would be stopped here.
DEADLINE = 60


def serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FANOUT_")}
    return subprocess.run(
        [sys.executable, "-m", "fanout", "serve", "--data-dir", str(tmp_path / "data"), *args],
        env={**clean, "FANOUT_WORKERS": "1", **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )


def error_line(run: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused start prints; nothing on stdout, no banner, no traceback."""
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("fanout: error: ")
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_in_use_is_reported_before_the_banner(tmp_path: Path, busy_port: int) -> None:
    run = serve(tmp_path, "--port", str(busy_port))

    assert run.returncode == 1
    line = error_line(run)
    assert f"127.0.0.1:{busy_port}" in line
    assert "already in use" in line and "--port or FANOUT_PORT" in line
    assert not (tmp_path / "data").exists(), "the store was opened before the port was checked"


def test_port_0_listens_on_a_port_the_system_picks_and_names_it(tmp_path: Path) -> None:
    port_file = tmp_path / "serve.port"
    args = ["serve", "--port", "0", "--port-file", str(port_file), "--workers", "1"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FANOUT_")}
    process = Process("fanout serve", args, clean, tmp_path / "serve.log")
    try:
        port = process.bound_port(port_file)
        url = f"http://127.0.0.1:{port}/healthz"
        wait_until(lambda: answers(url), DEADLINE, f"{url} to answer")
        assert f"serving on http://127.0.0.1:{port} " in process.output()
    finally:
        code = process.stop()
    assert code == 0
    assert not port_file.exists(), "a stopped server left its port file behind"


def answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False


def test_a_port_file_that_cannot_be_written_is_reported_before_the_banner(
    tmp_path: Path,
) -> None:
    run = serve(tmp_path, "--port", "0", "--port-file", str(tmp_path / "missing" / "port"))

    assert run.returncode == 1
    line = error_line(run)
    assert f"cannot write the port to {tmp_path / 'missing' / 'port'}" in line
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("env", "named", "value"),
    [
        ({"FANOUT_WORKERS": "two"}, "FANOUT_WORKERS", "'two'"),
        ({"FANOUT_PORT": "80a"}, "FANOUT_PORT", "'80a'"),
        ({"FANOUT_WEBHOOK_ALLOW_NETWORKS": "10.0.0.300/8"}, "FANOUT_WEBHOOK_ALLOW_NETWORKS", "300"),
        ({"FANOUT_LOG_FORMAT": "xml"}, "FANOUT_LOG_FORMAT", "'xml'"),
        # A 503's Retry-After of 0 would send every client back at once.
        (
            {"FANOUT_UNAVAILABLE_RETRY_AFTER": "0"},
            "FANOUT_UNAVAILABLE_RETRY_AFTER",
            "or equal to 1",
        ),
    ],
)
def test_a_bad_variable_is_one_line_naming_it(
    tmp_path: Path, env: dict[str, str], named: str, value: str
) -> None:
    run = serve(tmp_path, **env)

    assert run.returncode == 2
    line = error_line(run)
    assert named in line and value in line


def test_an_option_out_of_range_is_named_as_the_option(tmp_path: Path) -> None:
    line = error_line(run := serve(tmp_path, "--port", "99999"))

    assert run.returncode == 2
    assert line.startswith("fanout: error: --port: ") and "65535" in line


@pytest.mark.parametrize(
    ("args", "choices"),
    [(["--backend", "foo"], "'sqlite', 'aws'"), (["--log-level", "loud"], "'debug', 'info'")],
)
def test_an_unknown_choice_is_a_usage_error_listing_the_choices(
    tmp_path: Path, args: list[str], choices: str
) -> None:
    run = serve(tmp_path, *args)

    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    [error] = [line for line in run.stderr.splitlines() if line.startswith("Error: ")]
    assert args[0] in error and repr(args[1]) in error and choices in error


def test_a_public_address_without_api_keys_refuses_to_start_saying_what_to_set(
    tmp_path: Path,
) -> None:
    # Refused before anything binds: nothing listens on, or connects to, a non-loopback address.
    run = serve(tmp_path, "--host", "0.0.0.0")

    assert run.returncode == 2
    line = error_line(run)
    assert "0.0.0.0" in line and "FANOUT_API_KEYS=" in line
    assert not (tmp_path / "data").exists()


def test_a_missing_task_module_names_it_and_where_it_was_looked_for(tmp_path: Path) -> None:
    run = serve(tmp_path, FANOUT_TASKS="mytasks")

    assert run.returncode == 2
    line = error_line(run)
    assert "'mytasks'" in line and str(tmp_path) in line and "FANOUT_APP_DIR" in line


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("x = (\n", "SyntaxError"),
        ("raise RuntimeError('no config')\n", "RuntimeError: no config"),
        ("import nosuchlib\n", "No module named 'nosuchlib'"),
    ],
)
def test_a_task_module_that_fails_to_import_says_why_and_where(
    tmp_path: Path, source: str, why: str
) -> None:
    (tmp_path / "broken.py").write_text(source)

    run = serve(tmp_path, "--tasks", "broken")

    assert run.returncode == 2
    line = error_line(run)
    assert "'broken'" in line and why in line and f"{tmp_path / 'broken.py'}:1" in line
