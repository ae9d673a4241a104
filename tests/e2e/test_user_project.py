"""A user's project as a new user runs it: the `fanout` console script started in the project's
directory, no PYTHONPATH, the task module beside them, and a package of their own named `api`."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from tests.e2e.harness import Launcher

FANOUT = str(Path(sys.executable).parent / "fanout")


def project(root: Path) -> Path:
    """A task module that uses the project's own `api` package, as real projects name theirs."""
    (root / "api").mkdir(parents=True)
    (root / "api" / "__init__.py").write_text("GREETING = 'hello'\n")
    (root / "api" / "app.py").write_text("raise RuntimeError('the user project was imported')\n")
    (root / "mytasks.py").write_text(
        textwrap.dedent(
            """
            from api import GREETING
            from fanout import task


            @task
            def greet(name: str) -> str:
                return f"{GREETING}, {name}"
            """
        )
    )
    return root


def test_the_console_script_loads_tasks_from_the_directory_it_is_started_in(
    fanout: Launcher, tmp_path: Path
) -> None:
    root = project(tmp_path / "project")
    env = {"PYTHONPATH": "", "FANOUT_TASKS": "mytasks"}
    server = fanout.serve(workers=1, env=env, program=[FANOUT], cwd=root)

    job = server.submit({"task": "greet", "items": ["ada", "alan"]})
    done = server.wait_for_job(job["id"], 30)

    assert done["status"] == "succeeded"
    assert [r["output"] for r in server.results(job["id"])] == ["hello, ada", "hello, alan"]


def test_tasks_and_app_dir_options_find_a_module_elsewhere(
    fanout: Launcher, tmp_path: Path
) -> None:
    root = project(tmp_path / "project")
    options = ("--tasks", "mytasks", "--app-dir", str(root))
    server = fanout.serve(workers=1, env={"PYTHONPATH": ""}, options=options, program=[FANOUT])

    job = server.submit({"task": "greet", "items": ["grace"]})

    assert server.wait_for_job(job["id"], 30)["status"] == "succeeded"
    assert [r["output"] for r in server.results(job["id"])] == ["hello, grace"]
