"""The contract suite's backends: one factory per backend name, each returning the adapters.

Adding a backend is one entry in `BACKENDS`: a factory from the test's settings (its own
temporary data directory) to a `Backend` whose stores and queues start empty. A factory raises
`BackendUnavailable` when its backend cannot start (no emulator): its tests are then skipped on a
laptop and fail under CI.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fanout import wiring
from fanout.service import Backend
from fanout.settings import Settings
from tests.aws.moto import moto_backend
from tests.contract.support import MAX_RECEIVE_COUNT, BackendUnavailable, unavailable

BACKENDS: dict[str, Callable[[Settings], Backend]] = {
    "sqlite": wiring.sqlite_backend,
    "aws": moto_backend,
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, settings: Settings) -> Backend:
    try:
        return BACKENDS[request.param](settings)
    except BackendUnavailable as error:
        unavailable(f"the {request.param} backend", error)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's queue tests count on three receives before a message is dead-lettered."""
    return settings.model_copy(update={"max_receive_count": MAX_RECEIVE_COUNT})
