"""`python -m bench mutation`: mutation testing of the core policy and the SQLite store (mutmut 3),
then the score per module (killed / total) and every surviving mutant.

What is mutated and which tests judge it is `[tool.mutmut]` in pyproject.toml: `fanout/service/`,
`fanout/runner.py`, `fanout/webhooks.py` and `fanout/backends/sqlite/`, against the tests that
run in-process on the SQLite backend. mutmut copies the code into `mutants/`, runs each mutant
against the tests that reach its function, and keeps its verdicts there, so a second run only
tests what changed. Not in CI: a full run takes tens of minutes on two cores.

A surviving mutant that cannot change behaviour (an equivalent mutant) is listed with why in
`bench/mutation-equivalents.txt`; the report counts it apart, and names entries that no longer
survive (their code changed, or a test now kills them) so the list stays true. One kind is
recognised without a list: a mutant that only changes the case of SQL text (outside its quoted
literals) in a string, which SQLite reads the same.
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
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "bench" / "mutation-equivalents.txt"

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

    def add(self, name: str, code: int | None, equivalent: bool) -> None:
        verdict = _verdict(code)
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
    mutants: Path, patterns: Iterable[str], equivalent: Mapping[str, str]
) -> list[Module]:
    """One `Module` per mutated file, from mutmut's `<file>.meta` verdicts under `mutants/`."""
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
            module.add(name, code, sql_case or name in equivalent)
        modules.append(module)
    return modules


UNDETECTED = ("survived", "no tests")
# Upper-case SQL words: a string holding one is SQL text (an error message in English is not).
SQL_WORD = re.compile(
    r"\b(SELECT|UPDATE|INSERT|DELETE|FROM|WHERE|AND|OR|SET|VALUES|NOT|EXISTS|IN|IS|NULL|ORDER|"
    r"BY|LIMIT|COALESCE|COUNT|MAX|MIN|SUM|CASE|WHEN|THEN|ELSE|END|AS|ON|CONFLICT|DO|NOTHING|"
    r"RETURNING|PRAGMA|CREATE|INDEX|TABLE|IF|DEFAULT|PRIMARY|KEY|DESC|ASC|GROUP|JOIN|INTO|"
    r"REPLACE|IGNORE|BEGIN|IMMEDIATE|COMMIT|ROLLBACK|WITH|LIKE|BETWEEN|DISTINCT|UNION)\b"
)
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
            a == b or (SQL_WORD.search(a) is not None and _fold(a) == _fold(b))
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
        cells = "  ".join(f"{module.counts[c]:>10}" for c in COLUMNS)
        fraction = f"{module.counts['killed']}/{module.tested - module.counts['equivalent']}"
        print(f"{module.path:<{width}}  {cells}  {fraction:>9} {module.score():6.1%}")
    print(
        f"\nequivalent: {total.sql_case} change only the case of SQL text (SQLite's keywords and"
        f" names ignore case), {total.counts['equivalent'] - total.sql_case} are listed with why"
        f" in {EQUIVALENTS.relative_to(ROOT)} (equivalent, or out of this run's reach)"
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
        "total": {**total.counts, "score": total.score(), "sql_case": total.sql_case},
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
    parser.add_argument("--max-children", type=int, default=2, help="parallel test processes")
    parser.add_argument(
        "--report-only", action="store_true", help="print the last run's figures, run nothing"
    )
    parser.add_argument("--json", action="store_true", help="the figures as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    os.chdir(ROOT)
    patterns = _patterns()
    equivalent = read_equivalents()
    names = list(args.names)
    if args.survivors:
        names = _survivors(read_modules(ROOT / "mutants", patterns, equivalent), names)
        if not names:
            print("no surviving mutants to retest", file=sys.stderr)
    elif names and not args.again and (ROOT / "mutants").exists():
        # mutmut retests every mutant a name on its command line matches, verdict or not:
        # name only those without one, so an interrupted run resumes where it stopped.
        names = _unjudged(ROOT / "mutants", names)
        if not names:
            print("every mutant those names match has a verdict (--again retests)", file=sys.stderr)
    if not args.report_only and (names or not (args.survivors or args.names)):
        command = ["mutmut", "run", "--max-children", str(args.max_children), *names]
        ran = subprocess.run(command, stdout=sys.stderr, check=False)
        if ran.returncode != 0:
            print(f"mutmut run exited with {ran.returncode}", file=sys.stderr)
            return ran.returncode
    modules = read_modules(ROOT / "mutants", patterns, equivalent)
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
