"""CI's rule, checked by running pytest on a small test file with and without CI set: on a
laptop a test whose part is missing skips; under CI the same skip is a failure naming why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIPPING = """
import pytest

from tests.contract.support import BackendUnavailable, unavailable

pytestmark = pytest.mark.filterwarnings("ignore")


def test_on_the_moto_server():
    try:
        raise BackendUnavailable("no moto here")
    except BackendUnavailable as error:
        unavailable("the moto server", error)


@pytest.mark.skipif(True, reason="no chromium here")
def test_in_a_browser():
    pass
"""


def run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_parts.py").write_text(SKIPPING)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    # The rule lives in tests/conftest.py: loaded as a plugin, since this file is not under it.
    command = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider"]
    command += ["-q", "-rA", "--rootdir", str(tmp_path), str(tmp_path / "test_parts.py")]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_outside_ci_a_missing_part_skips_its_test(tmp_path: Path, ci: str | None) -> None:
    done = run(tmp_path, ci)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 skipped" in done.stdout
    assert "no moto here" in done.stdout and "no chromium here" in done.stdout


@pytest.mark.parametrize("ci", ["true", "1", "True"])
def test_under_ci_a_skip_is_a_failure_naming_the_missing_part(tmp_path: Path, ci: str) -> None:
    done = run(tmp_path, ci)

    assert done.returncode == 1, done.stdout + done.stderr
    # A skip in a test's body fails it; one at setup (a `skipif`) is an error of its setup.
    assert "1 failed, 1 error" in done.stdout
    assert "the moto server is unavailable" in done.stdout and "no moto here" in done.stdout
    assert "skipped under CI, where every test must run: no chromium here" in done.stdout


def test_under_ci_a_module_skipped_at_import_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "test_module.py").write_text('import pytest\npytest.importorskip("no_such_lib")\n')
    command = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider"]
    command += ["-q", "--rootdir", str(tmp_path), str(tmp_path / "test_module.py")]
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    # 5: no test ran (the module skipped); 2: the run stopped at a collection error.
    for ci, code in ((None, 5), ("true", 2)):
        run_env = env if ci is None else {**env, "CI": ci}
        done = subprocess.run(
            command, cwd=REPO, env=run_env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == code, done.stdout + done.stderr
    assert "skipped under CI, where every test must run: could not import 'no_such_lib'" in (
        done.stdout
    )
