"""The AWS tests' service (the whole pipeline on fresh resources on the moto server) and a real
webhook receiver on 127.0.0.1."""

from __future__ import annotations

import pytest

from fanout.service import Fanout
from fanout.settings import Settings
from fanout.wiring import build
from tests.aws.moto import fresh_settings
from tests.contract.support import BackendUnavailable, unavailable


@pytest.fixture
def aws_service(settings: Settings) -> Fanout:
    try:
        aws, clients = fresh_settings(settings.model_copy(update={"max_receive_count": 3}))
    except BackendUnavailable as error:
        unavailable("the aws backend", error)
    return build(aws, clients)
