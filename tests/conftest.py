"""Fixtures shared by every test: fresh settings on a temporary data directory. And CI's rule:
under CI (`tests.contract.support.in_ci`) no test may skip, so a skip is reported as a failure,
whatever skipped it (a fixture's missing part, a `skipif`, an `importorskip` at import)."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from fanout.service import Fanout
from fanout.settings import Settings
from fanout.wiring import build
from tests.contract.support import in_ci
from tests.e2e.harness import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1, stopped after the test (a module may define its own)."""
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()
    receiver.thread.join()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        workers=2,
        webhook_allow_networks=["127.0.0.0/8"],  # type: ignore[list-item]  # validated from str
        retry_backoff_base=0.001,
        retry_backoff_max=0.01,
        webhook_backoff_base=0.05,
        webhook_backoff_max=0.2,
    )


@pytest.fixture
def service(settings: Settings) -> Fanout:
    return build(settings)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        _fail_the_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if in_ci() and report.skipped:
        _fail_the_skip(report)
    return report


def _fail_the_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    # A skip's longrepr is (file, line, "Skipped: <reason>").
    where = report.longrepr
    reason = (where[2] if isinstance(where, tuple) else str(where)).removeprefix("Skipped: ")
    report.outcome = "failed"
    report.longrepr = f"skipped under CI, where every test must run: {reason}"
