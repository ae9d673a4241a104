"""Fixtures of the end-to-end tests: the processes a test started (stopped after it, their output
shown when it fails) and a webhook receiver."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Launcher, Process

PROCESSES = pytest.StashKey[list[Process]]()


@pytest.fixture
def fanout(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Launcher]:
    started: list[Process] = []
    request.node.stash[PROCESSES] = started
    fanout = Launcher(tmp_path, started)
    yield fanout
    fanout.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for process in item.stash.get(PROCESSES, []):
            report.sections.append(
                (f"output of {process.name} ({process.log.name})", process.output())
            )
    return report
