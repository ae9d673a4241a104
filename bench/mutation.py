"""`python -m bench mutation`: mutation testing of the core policy and the SQLite store (mutmut 3),
then the score per module (killed / total) and every surviving mutant.

What is mutated and which tests judge it is `[tool.mutmut]` in pyproject.toml: `fanout/service/`,
`fanout/runner.py`, `fanout/webhooks.py`, `fanout/http1.py` and `fanout/backends/sqlite/`,
against the tests that run in-process on the SQLite backend. mutmut copies the code into
`mutants/`, runs each mutant against the tests that reach its function, and keeps its verdicts
there, so a second run only tests what changed. Not in CI: a full run takes tens of minutes on
two cores.

A surviving mutant that cannot change behaviour (an equivalent mutant) is listed with why in
`bench/mutation-equivalents.txt`; the report counts it apart, and names entries that no longer
survive (their code changed, or a test now kills them) so the list stays true. One kind is
recognised without a list: a mutant that only changes the case of SQL text (outside its quoted
literals) in a string, which SQLite reads the same.

Code only the AWS backend runs (notices, the final output file in S3, the stream fan-in, the
reconciler's window) survives the SQLite run untouched. `--aws` judges chosen mutants (by
default those listed as equivalent and those that survived) with the AWS backend's in-process
tests on the moto server instead: `[tool.bench.mutation-aws]` in pyproject.toml names them. That
run keeps its own copy and verdicts under `.mutation-aws/` (mutmut resets every verdict when
its test selection changes, so the two runs cannot share `mutants/`), and the report counts a
mutant the AWS tests killed as killed.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "bench" / "mutation-equivalents.txt"
# mutmut's working directory for `--aws`: the project's sources and tests linked in, a
# pyproject.toml whose [tool.mutmut] selects the AWS tests, its own `mutants/` and verdicts.
AWS_WORK = ROOT / ".mutation-aws"

# mutmut's exit codes (mutmut.stats.status_by_exit_code): 1 and 3 a test failed; 0 every test
# passed; 33 and 5 no test reaches the mutant; 36, 24, 152, 255 and -24 the tests ran past their
# time (an infinite loop: detected); -9 and -11 the test process died (detected); None not run yet.
KILLED = {1, 3, 36, 24, -24, 152, 255, -9, -11, 37}
SURVIVED = {0}
NO_TESTS = {33, 5}


@dataclass
class Module:
    """The verdicts on one source file's mutants."""

    path: str
    survivors: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    # Names on the equivalents list still undetected here (or not run yet): not stale.
    equivalent: set[str] = field(default_factory=set)
    sql_case: int = 0  # the equivalent mutants that only change the case of SQL text
    by_aws: int = 0  # the killed mutants only the AWS tests (`--aws`) killed

    def add(self, name: str, code: int | None, equivalent: bool, aws: int | None = None) -> None:
        verdict = _verdict(code)
        if verdict != "killed" and _verdict(aws) == "killed":
            verdict = "killed"
            self.by_aws += 1
        undetected = verdict in ("survived", "no tests")
        if equivalent and (undetected or verdict == "not run"):
            self.equivalent.add(name)
        if undetected and equivalent:
            verdict = "equivalent"
        elif undetected:
            self.survivors.append(f"{name} ({verdict})")
        self.counts[verdict] += 1

    @property
    def tested(self) -> int:
        return sum(n for verdict, n in self.counts.items() if verdict != "not run")

    def score(self) -> float:
        """Killed over every mutant that could be killed (the equivalent ones cannot)."""
        killable = self.tested - self.counts["equivalent"]
        return self.counts["killed"] / killable if killable else 1.0


def _verdict(code: int | None) -> str:
    if code is None:
        return "not run"
    if code in KILLED:
        return "killed"
    if code in NO_TESTS:
        return "no tests"
    return "survived" if code in SURVIVED else "suspicious"


def read_equivalents(path: Path = EQUIVALENTS) -> dict[str, str]:
    """`mutant-name  why` lines; `#` starts a comment."""
    if not path.exists():
        return {}
    found = {}
    for line in path.read_text().splitlines():
        name, _, why = line.partition("#")[0].strip().partition(" ")
        if name:
            found[name] = why.strip()
    return found


def read_modules(
    mutants: Path,
    patterns: Iterable[str],
    equivalent: Mapping[str, str],
    aws: Path | None = None,
) -> list[Module]:
    """One `Module` per mutated file, from mutmut's `<file>.meta` verdicts under `mutants/`;
    a mutant the AWS tests killed (verdicts under `aws`, a `--aws` run's `mutants/`) counts as
    killed."""
    by_aws = read_verdicts(aws) if aws is not None else {}
    modules = []
    for meta in sorted(mutants.rglob("*.py.meta")):
        path = meta.relative_to(mutants).as_posix().removesuffix(".meta")
        verdicts: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        if not verdicts or not any(fnmatch(path, pattern) for pattern in patterns):
            continue
        module, source = Module(path), MutantSource(mutants / path)
        for name, code in sorted(verdicts.items(), key=lambda item: _natural(item[0])):
            sql_case = _verdict(code) in UNDETECTED and source.sql_case_only(name)
            module.sql_case += sql_case
            module.add(name, code, sql_case or name in equivalent, by_aws.get(name))
        modules.append(module)
    return modules


def read_verdicts(mutants: Path) -> dict[str, int | None]:
    """Every mutant's exit code under a `mutants/` directory (none if it does not exist)."""
    found: dict[str, int | None] = {}
    for meta in mutants.rglob("*.py.meta") if mutants.exists() else ():
        found.update(json.loads(meta.read_text())["exit_code_by_key"])
    return found


UNDETECTED = ("survived", "no tests")
# Upper-case SQL words: a string holding one is SQL text (an error message in English is not).
SQL_WORD = re.compile(
    r"\b(SELECT|UPDATE|INSERT|DELETE|FROM|WHERE|AND|OR|SET|VALUES|NOT|EXISTS|IN|IS|NULL|ORDER|"
    r"BY|LIMIT|COALESCE|COUNT|MAX|MIN|SUM|CASE|WHEN|THEN|ELSE|END|AS|ON|CONFLICT|DO|NOTHING|"
    r"RETURNING|PRAGMA|CREATE|INDEX|TABLE|IF|DEFAULT|PRIMARY|KEY|DESC|ASC|GROUP|JOIN|INTO|"
    r"REPLACE|IGNORE|BEGIN|IMMEDIATE|COMMIT|ROLLBACK|WITH|LIKE|BETWEEN|DISTINCT|UNION)\b"
)
# A condition on a `?` parameter (`j.seq < ?`) is SQL text too: a WHERE clause built in parts.
PLACEHOLDER = re.compile(r"(=|<|>|<=|>=|<>|!=)\s*\?")
QUOTED = re.compile(r"('[^']*')")


class MutantSource:
    """The functions of a file as mutmut rewrote it: each mutant beside `..._mutmut_orig`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] | None = None

    def sql_case_only(self, mutant: str) -> bool:
        """The mutant only changes the case of SQL text outside its '...' literals: SQLite's
        keywords and identifiers are case-insensitive, so it is equivalent. (A literal's case
        is not: `state = 'RUNNING'` matches nothing.)"""
        name = mutant.rpartition(".")[2]
        functions = self._load()
        orig = functions.get(name.rpartition("__mutmut_")[0] + "__mutmut_orig")
        changed = functions.get(name)
        if orig is None or changed is None:
            return False
        before, after = _strings(orig), _strings(changed)
        if _shape(orig) != _shape(changed) or before == after:
            return False
        return all(
            a == b or (_is_sql(a) and _fold(a) == _fold(b))
            for a, b in zip(before, after, strict=True)
        )

    def _load(self) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
        if self._functions is None:
            tree = (
                ast.parse(self.path.read_text())
                if self.path.exists()
                else ast.Module(body=[], type_ignores=[])
            )
            self._functions = {
                node.name: node
                for node in ast.walk(tree)
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            }
        return self._functions


def _strings(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    return [
        node.value
        for node in ast.walk(function)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def _shape(function: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """The function (its name aside: arguments, body) with every string made the same."""

    class Blank(ast.NodeTransformer):
        def visit_Constant(self, node: ast.Constant) -> ast.Constant:
            return ast.Constant("") if isinstance(node.value, str) else node

    copied = Blank().visit(copy.deepcopy(function))
    return ast.dump(copied.args) + "".join(ast.dump(stmt) for stmt in copied.body)


def _is_sql(text: str) -> bool:
    return SQL_WORD.search(text) is not None or PLACEHOLDER.search(text) is not None


def _fold(sql: str) -> str:
    """SQL text in lower case, its '...' literals as they are."""
    return "".join(p if p.startswith("'") else p.lower() for p in QUOTED.split(sql))


def _natural(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("_")
    return (stem, int(number)) if number.isdigit() else (name, 0)


COLUMNS = ("killed", "survived", "no tests", "equivalent", "suspicious", "not run")


def report(modules: list[Module], equivalent: Mapping[str, str]) -> dict[str, Any]:
    """Print the score per module and the survivors; return the same as a dict."""
    total = Module("total")
    width = max([len(m.path) for m in modules] + [10])
    print(f"{'module':<{width}}  " + "  ".join(f"{c:>10}" for c in COLUMNS) + "       score")
    for module in [*modules, total]:
        if module is not total:
            total.counts.update(module.counts)
            total.survivors += module.survivors
            total.equivalent |= module.equivalent
            total.sql_case += module.sql_case
            total.by_aws += module.by_aws
        cells = "  ".join(f"{module.counts[c]:>10}" for c in COLUMNS)
        fraction = f"{module.counts['killed']}/{module.tested - module.counts['equivalent']}"
        print(f"{module.path:<{width}}  {cells}  {fraction:>9} {module.score():6.1%}")
    print(
        f"\nequivalent: {total.sql_case} change only the case of SQL text (SQLite's keywords and"
        f" names ignore case), {total.counts['equivalent'] - total.sql_case} are listed with why"
        f" in {EQUIVALENTS.relative_to(ROOT)} (equivalent, or out of this run's reach)"
    )
    if total.by_aws:
        print(
            f"killed: {total.by_aws} of them only by the AWS tests on the moto server"
            f" (`--aws`, verdicts in {AWS_WORK.relative_to(ROOT)}/mutants)"
        )
    print(f"\nsurviving mutants ({len(total.survivors)}; `mutmut show NAME` shows one):")
    for name in total.survivors:
        print(f"  {name}")
    stale = sorted(set(equivalent) - total.equivalent)
    if stale:
        print(f"\nlisted as equivalent, but killed or gone ({len(stale)}):")
        for name in stale:
            print(f"  {name}")
    return {
        "modules": {m.path: {**m.counts, "score": m.score()} for m in modules},
        "total": {
            **total.counts,
            "score": total.score(),
            "sql_case": total.sql_case,
            "by_aws": total.by_aws,
        },
        "survivors": total.survivors,
        "stale_equivalents": stale,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names",
        nargs="*",
        help="mutant names or globs to (re)test, e.g. 'fanout.webhooks.*' (default: every "
        "mutant without a verdict yet)",
    )
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="retest the mutants that survived the last run (of those NAMES match), as after "
        "new tests: mutmut keeps a verdict until its code changes",
    )
    parser.add_argument(
        "--again", action="store_true", help="retest the mutants NAMES match even with a verdict"
    )
    parser.add_argument(
        "--aws",
        action="store_true",
        help="judge the mutants NAMES match (default: those listed as equivalent and those "
        "that survived) with the AWS backend's tests on the moto server "
        "([tool.bench.mutation-aws] in pyproject.toml)",
    )
    parser.add_argument("--max-children", type=int, default=2, help="parallel test processes")
    parser.add_argument(
        "--report-only", action="store_true", help="print the last run's figures, run nothing"
    )
    parser.add_argument("--json", action="store_true", help="the figures as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    os.chdir(ROOT)
    patterns = _patterns()
    equivalent = read_equivalents()
    if not args.report_only:
        ran = _run_mutmut(args, patterns, equivalent)
        if ran != 0:
            print(f"mutmut run exited with {ran}", file=sys.stderr)
            return ran
    modules = read_modules(ROOT / "mutants", patterns, equivalent, AWS_WORK / "mutants")
    if not modules:
        print("no verdicts under mutants/: run `python -m bench mutation` first", file=sys.stderr)
        return 1
    stdout = sys.stdout
    if args.json:
        sys.stdout = sys.stderr
    try:
        figures = report(modules, equivalent)
    finally:
        sys.stdout = stdout
    if args.json:
        json.dump(figures, sys.stdout, indent=2)
    return 0


def _run_mutmut(
    args: argparse.Namespace, patterns: list[str], equivalent: Mapping[str, str]
) -> int:
    """Run mutmut over the mutants the arguments choose (in `AWS_WORK` for `--aws`)."""
    work, names = ROOT, list(args.names)
    if args.aws:
        work = aws_work_dir()
        # By default what the SQLite run left: the listed mutants and the survivors.
        names = names or sorted({*equivalent, *_survivors(_modules(patterns, equivalent), [])})
    elif args.survivors:
        # Survivors have a verdict: they are named to mutmut, which retests them.
        names = _survivors(_modules(patterns, equivalent), names)
        if not names:
            print("no surviving mutants to retest", file=sys.stderr)
            return 0
    if names and not (args.again or args.survivors) and (work / "mutants").exists():
        # mutmut retests every mutant a name on its command line matches, verdict or not:
        # name only those without one, so an interrupted run resumes where it stopped.
        names = _unjudged(work / "mutants", names)
        if not names:
            print("every mutant those names match has a verdict (--again retests)", file=sys.stderr)
            return 0
    command = ["mutmut", "run", "--max-children", str(args.max_children), *names]
    # pytest's tmp_path directories in a root of this run's own: other pytest sessions on the
    # machine remove old ones from the shared root, and a removal racing ours fails the run.
    with tempfile.TemporaryDirectory(prefix="bench-mutation-") as temproot:
        env = {**os.environ, "PYTEST_DEBUG_TEMPROOT": temproot}
        return subprocess.run(command, cwd=work, env=env, stdout=sys.stderr, check=False).returncode


def _modules(patterns: list[str], equivalent: Mapping[str, str]) -> list[Module]:
    return read_modules(ROOT / "mutants", patterns, equivalent)


def aws_work_dir(root: Path = ROOT, work: Path = AWS_WORK) -> Path:
    """`work` made ready for mutmut: the sources and tests linked in from `root`, and its
    pyproject.toml with [tool.mutmut]'s keys replaced by those of [tool.bench.mutation-aws] (the
    test selection, pytest's arguments, the process isolation); mutmut reads its configuration
    from the working directory."""
    work.mkdir(exist_ok=True)
    for name in ("fanout", "tests"):
        link = work / name
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(root / name, work))
    (work / "pyproject.toml").write_text(aws_pyproject((root / "pyproject.toml").read_text()))
    return work


def aws_pyproject(text: str) -> str:
    """The project's pyproject.toml with [tool.mutmut] rewritten for the AWS run."""
    import tomllib

    tool = tomllib.loads(text)["tool"]
    config = {**tool["mutmut"], **tool["bench"]["mutation-aws"]}
    table = "[tool.mutmut]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items())
    start = text.index("[tool.mutmut]\n")
    end = re.compile(r"^\[", re.MULTILINE).search(text, start + 1)
    return text[:start] + table + "\n" + (text[end.start() :] if end else "")


def _survivors(modules: list[Module], names: list[str]) -> list[str]:
    """The surviving mutants' names, those `names` match if any are given."""
    alive = [survivor.partition(" ")[0] for m in modules for survivor in m.survivors]
    return [n for n in alive if not names or any(fnmatch(n, glob) for glob in names)]


def _unjudged(mutants: Path, globs: list[str]) -> list[str]:
    """The mutants `globs` match that have no verdict yet."""
    found = []
    for meta in mutants.rglob("*.py.meta"):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if code is None and any(fnmatch(name, glob) for glob in globs):
                found.append(name)
    return sorted(found, key=_natural)


def _patterns() -> list[str]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    patterns: list[str] = config["only_mutate"]
    return patterns
