"""Reading a job's items from a file, as `Client.submit(items_file=...)` and `fanout submit` do."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from fanout.client import ItemsFileError, read_items


def test_json_jsonl_and_csv_files_give_the_same_items_in_order(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('[{"n": "1"}, {"n": "2"}]')
    (tmp_path / "a.jsonl").write_text('{"n": "1"}\n\n{"n": "2"}\n')
    (tmp_path / "a.csv").write_text("n\n1\n2\n")
    for name in ("a.json", "a.jsonl", "a.csv"):
        assert read_items(tmp_path / name) == [{"n": "1"}, {"n": "2"}], name


def test_standard_input_is_json_when_it_starts_with_a_bracket_else_json_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for text, items in (("  [1, 2]", [1, 2]), ("1\n2\n", [1, 2]), ('"a"\n', ["a"])):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
        assert read_items("-") == items
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"n,m\n1,2\n")))
    assert read_items("-", "csv") == [{"n": "1", "m": "2"}]


def test_a_bad_file_is_an_error_naming_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text("1\n{oops\n")
    with pytest.raises(ItemsFileError, match=r"bad.jsonl: line 2"):
        read_items(tmp_path / "bad.jsonl")
    (tmp_path / "object.json").write_text('{"a": 1}')
    with pytest.raises(ItemsFileError, match="array"):
        read_items(tmp_path / "object.json")
    with pytest.raises(ItemsFileError, match="cannot read"):
        read_items(tmp_path / "missing.json")


def test_the_client_imports_neither_fastapi_nor_the_service() -> None:
    """A client machine needs httpx and pydantic, not the server's stack."""
    code = (
        "import sys, fanout.client;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette')"
        " or m in ('fanout.service', 'fanout.api')))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert shown.stdout.strip() == "[]"
