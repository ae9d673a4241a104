"""The image's recipe (`Dockerfile`) and how its command behaves. No container engine runs in CI:
the recipe is read here, and the image's command is run with the image's environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.splitlines() if not line.startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
        for line in text.splitlines()
        if line.strip()
    ]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, arguments in instructions():
        if instruction == "ENV":
            env.update(re.findall(r"(\w+)=(\S+)", arguments))
    return env


def test_the_dependencies_are_installed_in_a_layer_before_the_code_is_copied() -> None:
    steps = instructions()
    copies = [(i, args) for i, (kind, args) in enumerate(steps) if kind == "COPY"]
    installs = [
        i for i, (kind, args) in enumerate(steps) if kind == "RUN" and "pip install" in args
    ]

    assert copies[0][1].split()[0] == "pyproject.toml", "only pyproject.toml before the deps"
    assert copies[0][0] < installs[0] < copies[1][0], "dependencies installed before the code"
    assert "--no-deps" in steps[installs[1]][1], "the code's own install adds no dependency"


def test_the_dependency_step_installs_what_pyproject_declares() -> None:
    [step] = [args for kind, args in instructions() if kind == "RUN" and "tomllib" in args]
    program = re.search(r'python -c "(.*?)" ?>', step, re.S)
    assert program is not None
    listed = subprocess.run(
        [sys.executable, "-c", program[1].replace("\\n", "\n").replace("'\n'", "'\\n'")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    assert listed == project["dependencies"] + project["optional-dependencies"]["aws"]


def test_the_health_check_asks_for_readiness() -> None:
    [check] = [args for kind, args in instructions() if kind == "HEALTHCHECK"]

    assert "/readyz" in check and "/healthz" not in check


def test_the_image_listens_publicly_and_so_refuses_to_start_without_keys(tmp_path: Path) -> None:
    env = image_env()
    assert env["FANOUT_HOST"] == "0.0.0.0"
    assert "FANOUT_API_KEYS" not in env, "no key is baked into the image"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FANOUT_")}
    [command] = [json.loads(args) for kind, args in instructions() if kind == "CMD"]
    entry = subprocess.run(
        ["/bin/sh", str(REPO / "scripts" / "docker-entrypoint"), *command],
        env={**clean, **env, "FANOUT_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert entry.returncode == 2
    assert entry.stderr.splitlines() == [
        "fanout: error: refusing to listen on 0.0.0.0 without API keys: set"
        " FANOUT_API_KEYS=<key>:<tenant>[,...] (clients then send `Authorization: Bearer"
        " <key>`), or listen on 127.0.0.1"
    ]
