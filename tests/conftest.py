"""Fixtures shared by every test: fresh settings on a temporary data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from fanout.service import Fanout
from fanout.settings import Settings
from fanout.wiring import build


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
