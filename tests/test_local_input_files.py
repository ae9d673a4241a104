"""The embedded backend's input files: only regular files under the input directory are read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fanout.backends.files import LocalInputFiles
from fanout.errors import InputNotFound, InputRefused


@pytest.fixture
def root(tmp_path: Path) -> Path:
    inputs = tmp_path / "inputs"
    (inputs / "sub").mkdir(parents=True)
    (inputs / "items.jsonl").write_bytes(b"1\n2\n")
    (inputs / "sub" / "more.csv").write_bytes(b"a\n1\n")
    (tmp_path / "secret.jsonl").write_bytes(b"42\n")
    return inputs


def read(files: LocalInputFiles, url: str) -> bytes:
    with files.open(url) as stream:
        return stream.read()


def test_a_relative_path_and_a_file_url_read_the_file_under_the_directory(root: Path) -> None:
    files = LocalInputFiles(root)
    assert read(files, "items.jsonl") == b"1\n2\n"
    assert read(files, "sub/more.csv") == b"a\n1\n"
    assert read(files, (root / "items.jsonl").as_uri()) == b"1\n2\n"
    assert read(files, "file://localhost" + str(root / "sub" / "more.csv")) == b"a\n1\n"


def test_a_link_inside_the_directory_to_a_file_inside_it_is_read(root: Path) -> None:
    (root / "alias.jsonl").symlink_to(root / "items.jsonl")
    assert read(LocalInputFiles(root), "alias.jsonl") == b"1\n2\n"


def test_a_missing_file_is_not_found(root: Path) -> None:
    with pytest.raises(InputNotFound, match="no such file"):
        LocalInputFiles(root).open("nothing.jsonl")
    with pytest.raises(InputNotFound):
        LocalInputFiles(root / "absent").open("items.jsonl")


@pytest.mark.parametrize(
    "url",
    [
        "../secret.jsonl",
        "sub/../../secret.jsonl",
        "/etc/passwd",
        "file:///etc/passwd",
        "file://other-host/etc/passwd",
        "s3://bucket/items.jsonl",
        "http://127.0.0.1/items.jsonl",
        "items.jsonl\x00.csv",
    ],
)
def test_paths_outside_the_directory_and_other_schemes_are_refused(root: Path, url: str) -> None:
    with pytest.raises(InputRefused):
        LocalInputFiles(root).open(url)


def test_a_link_out_of_the_directory_is_refused(root: Path) -> None:
    (root / "escape.jsonl").symlink_to(root.parent / "secret.jsonl")
    (root / "outside").symlink_to(root.parent)
    files = LocalInputFiles(root)
    with pytest.raises(InputRefused, match="not a file under the input directory"):
        files.open("escape.jsonl")
    with pytest.raises(InputRefused, match="not a file under the input directory"):
        files.open("outside/secret.jsonl")


def test_directories_pipes_and_devices_are_refused(root: Path) -> None:
    os.mkfifo(root / "pipe.jsonl")
    (root / "null").symlink_to("/dev/null")
    files = LocalInputFiles(root)
    for url in ("sub", "pipe.jsonl", "null"):
        with pytest.raises(InputRefused):
            files.open(url)
