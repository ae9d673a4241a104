"""What `pip install .` puts on a user's machine: one `fanout` package, its version, its licence."""

from __future__ import annotations

import email.parser
import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import fanout

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel built from a copy of the sources (setuptools writes `build/` beside them), with
    the setuptools of the dev extra, so no network is needed."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(REPO, source, symlinks=True, ignore=ignore)
    out = tmp_path / "dist"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
    built = subprocess.run(
        [*pip_wheel, "--no-build-isolation", "--wheel-dir", str(out), str(source)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    return zipfile.ZipFile(next(out.glob("fanout-*.whl")))


def test_the_wheel_installs_only_the_fanout_package_with_its_edges_inside_it(
    wheel: zipfile.ZipFile,
) -> None:
    names = wheel.namelist()

    assert {name.split("/")[0] for name in names} == {
        "fanout",
        f"fanout-{fanout.__version__}.dist-info",
    }
    assert "fanout/api/app.py" in names
    assert "fanout/workers/chunk_worker.py" in names
    assert "fanout/py.typed" in names


def test_the_wheel_says_its_version_licence_and_classifiers(wheel: zipfile.ZipFile) -> None:
    info = f"fanout-{fanout.__version__}.dist-info"
    metadata = email.parser.Parser().parsestr(wheel.read(f"{info}/METADATA").decode())

    assert metadata["Version"] == fanout.__version__
    assert metadata["License-Expression"] == "MIT"
    assert "MIT License" in wheel.read(f"{info}/licenses/LICENSE").decode()
    assert "Programming Language :: Python :: 3.11" in metadata.get_all("Classifier", [])
    assert metadata["Requires-Python"] == ">=3.11"


def test_the_cli_the_package_and_its_metadata_agree_on_the_version() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "fanout", "--version"], capture_output=True, text=True, check=True
    ).stdout

    assert printed == f"fanout {fanout.__version__}\n"
    assert importlib.metadata.version("fanout") == fanout.__version__
