"""`python -m bench mutation`'s report, read from verdict files laid out as mutmut 3 writes them
(`mutants/<source path>.meta`, JSON with `exit_code_by_key`); the mutation run itself is not in
the suite (it takes tens of minutes)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bench import mutation


def write_verdicts(mutants: Path, path: str, verdicts: dict[str, int | None]) -> None:
    meta = mutants / f"{path}.meta"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"exit_code_by_key": verdicts}))


@pytest.fixture
def mutants(tmp_path: Path) -> Path:
    write_verdicts(
        tmp_path,
        "fanout/webhooks.py",
        {
            "fanout.webhooks.x_send__mutmut_1": 1,
            "fanout.webhooks.x_send__mutmut_2": 0,
            "fanout.webhooks.x_send__mutmut_10": 36,
            "fanout.webhooks.x_send__mutmut_3": 33,
            "fanout.webhooks.x_sign__mutmut_1": 0,
        },
    )
    write_verdicts(
        tmp_path,
        "fanout/service/finishing.py",
        {"fanout.service.finishing.x_event_id__mutmut_1": 1, "f.x_g__mutmut_2": None},
    )
    write_verdicts(tmp_path, "fanout/cli/app.py", {"fanout.cli.app.x_main__mutmut_1": 0})
    return tmp_path


PATTERNS = ["fanout/webhooks.py", "fanout/service/*"]


def test_the_report_scores_each_module_and_names_every_survivor(
    mutants: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    modules = mutation.read_modules(mutants, PATTERNS, {})
    figures = mutation.report(modules, {})
    printed = capsys.readouterr().out

    assert [m.path for m in modules] == ["fanout/service/finishing.py", "fanout/webhooks.py"]
    # A time-out is a detected mutant; a mutant no test reaches is not.
    assert figures["modules"]["fanout/webhooks.py"]["score"] == pytest.approx(2 / 5)
    assert figures["total"]["killed"] == 3 and figures["total"]["not run"] == 1
    assert figures["total"]["score"] == pytest.approx(3 / 6)
    assert figures["survivors"] == [
        "fanout.webhooks.x_send__mutmut_2 (survived)",
        "fanout.webhooks.x_send__mutmut_3 (no tests)",
        "fanout.webhooks.x_sign__mutmut_1 (survived)",
    ]
    assert "fanout/webhooks.py" in printed and "2/5" in printed and "3/6" in printed
    assert "fanout.webhooks.x_sign__mutmut_1 (survived)" in printed
    assert "fanout.cli" not in printed  # outside the mutated paths


def test_an_equivalent_mutant_counts_apart_and_a_stale_entry_is_named(
    mutants: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = tmp_path / "equivalents.txt"
    listed.write_text(
        "# name  why\n"
        "fanout.webhooks.x_sign__mutmut_1  the header order does not matter\n"
        "fanout.webhooks.x_send__mutmut_1  killed since: this entry is stale\n"
    )
    equivalent = mutation.read_equivalents(listed)
    figures = mutation.report(mutation.read_modules(mutants, PATTERNS, equivalent), equivalent)

    assert equivalent["fanout.webhooks.x_sign__mutmut_1"] == "the header order does not matter"
    assert figures["modules"]["fanout/webhooks.py"]["equivalent"] == 1
    assert figures["modules"]["fanout/webhooks.py"]["score"] == pytest.approx(2 / 4)
    assert "fanout.webhooks.x_sign__mutmut_1 (survived)" not in figures["survivors"]
    assert figures["stale_equivalents"] == ["fanout.webhooks.x_send__mutmut_1"]
    assert "killed or gone (1)" in capsys.readouterr().out


def test_the_mutated_paths_are_those_the_configuration_names() -> None:
    assert mutation._patterns() == [
        "fanout/service/*",
        "fanout/runner.py",
        "fanout/webhooks.py",
        "fanout/http1.py",
        "fanout/backends/sqlite/*",
    ]


SOURCE = """
class Store:
    def xǁStoreǁcount__mutmut_orig(self, conn, j):
        return conn.execute("SELECT COUNT(*) FROM chunks WHERE id = ? AND state = 'done'", (j,))
    def xǁStoreǁcount__mutmut_1(self, conn, j):
        return conn.execute("select count(*) from chunks where id = ? and state = 'done'", (j,))
    def xǁStoreǁcount__mutmut_2(self, conn, j):
        return conn.execute("SELECT COUNT(*) FROM CHUNKS WHERE ID = ? AND STATE = 'DONE'", (j,))
    def xǁStoreǁcount__mutmut_3(self, conn, j):
        return conn.execute("SELECT COUNT(*) FROM chunks WHERE id = ? AND state = 'done'", None)
def x_fail__mutmut_orig(error="reducer is not registered in this process"):
    raise LookupError(error)
def x_fail__mutmut_1(error="REDUCER IS NOT REGISTERED IN THIS PROCESS"):
    raise LookupError(error)
"""


def test_a_mutant_changing_only_the_case_of_sql_text_is_equivalent_and_no_other(
    tmp_path: Path,
) -> None:
    (tmp_path / "store.py").write_text(SOURCE)
    source = mutation.MutantSource(tmp_path / "store.py")

    assert source.sql_case_only("m.store.xǁStoreǁcount__mutmut_1")
    # Upper case reaches the quoted literal: 'DONE' is another value.
    assert not source.sql_case_only("m.store.xǁStoreǁcount__mutmut_2")
    assert not source.sql_case_only("m.store.xǁStoreǁcount__mutmut_3")
    # An English message holding "IS NOT IN" is not SQL.
    assert not source.sql_case_only("m.store.x_fail__mutmut_1")
    assert not source.sql_case_only("m.store.x_gone__mutmut_1")


PARTS = """
def x_where__mutmut_orig(where, cursor):
    where.append("j.seq < ?")
def x_where__mutmut_1(where, cursor):
    where.append("J.SEQ < ?")
def x_say__mutmut_orig(where):
    where.append("a = b")
def x_say__mutmut_1(where):
    where.append("A = B")
"""


def test_a_condition_on_a_parameter_is_sql_text_though_it_holds_no_keyword(
    tmp_path: Path,
) -> None:
    """A WHERE clause built in parts (`j.seq < ?`): its names ignore case as the whole query's."""
    (tmp_path / "parts.py").write_text(PARTS)
    source = mutation.MutantSource(tmp_path / "parts.py")

    assert source.sql_case_only("m.parts.x_where__mutmut_1")
    assert not source.sql_case_only("m.parts.x_say__mutmut_1")


def test_a_mutant_the_aws_tests_killed_counts_as_killed_and_is_said_so(
    mutants: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aws = tmp_path / "aws-mutants"
    write_verdicts(
        aws,
        "fanout/webhooks.py",
        {
            "fanout.webhooks.x_send__mutmut_2": 1,  # survived on SQLite, killed on AWS
            "fanout.webhooks.x_send__mutmut_3": 0,  # no SQLite test, survived on AWS
            "fanout.webhooks.x_sign__mutmut_1": None,  # not judged on AWS
        },
    )
    listed = {"fanout.webhooks.x_send__mutmut_2": "AWS only: stale once the AWS tests kill it"}

    figures = mutation.report(mutation.read_modules(mutants, PATTERNS, listed, aws), listed)

    assert figures["modules"]["fanout/webhooks.py"]["killed"] == 3
    assert figures["modules"]["fanout/webhooks.py"]["score"] == pytest.approx(3 / 5)
    assert figures["total"]["by_aws"] == 1
    assert figures["survivors"] == [
        "fanout.webhooks.x_send__mutmut_3 (no tests)",
        "fanout.webhooks.x_sign__mutmut_1 (survived)",
    ]
    assert figures["stale_equivalents"] == ["fanout.webhooks.x_send__mutmut_2"]
    assert "1 of them only by the AWS tests" in capsys.readouterr().out


def test_the_aws_run_s_configuration_selects_the_aws_tests_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    work = mutation.aws_work_dir(mutation.ROOT, tmp_path / "work")
    written = tomllib.loads((work / "pyproject.toml").read_text())
    project = tomllib.loads((mutation.ROOT / "pyproject.toml").read_text())
    aws = project["tool"]["bench"]["mutation-aws"]
    assert written["tool"]["mutmut"] == {**project["tool"]["mutmut"], **aws}
    assert "aws" in aws["pytest_add_cli_args"] and "not aws" not in aws["pytest_add_cli_args"]
    # Every other table as it was: pytest's configuration applies to the copied tests.
    assert {k: v for k, v in written["tool"].items() if k != "mutmut"} == {
        k: v for k, v in project["tool"].items() if k != "mutmut"
    }
    assert written["project"] == project["project"]
    assert (work / "fanout").resolve() == mutation.ROOT / "fanout"
    assert (work / "tests").resolve() == mutation.ROOT / "tests"
    assert mutation.aws_work_dir(mutation.ROOT, tmp_path / "work") == work  # made again: the same


def test_the_sqlite_run_leaves_out_only_the_tests_of_the_aws_backend() -> None:
    """`-k "not aws"` matches any name holding "aws": a test named "..._draws_..." was left out
    of every mutation run, and the three mutants only it killed were reported surviving."""
    config = tomllib.loads((mutation.ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        + config["pytest_add_cli_args_test_selection"],
        cwd=mutation.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    tests = [line for line in listed if "::" in line]

    assert len(tests) > 100
    left_out = [t for t in tests if "aws" in t.lower()]
    assert left_out, "the contract tests run on the aws backend too"
    assert [t for t in left_out if not re.search(r"[\[-]aws[\]-]", t)] == []
