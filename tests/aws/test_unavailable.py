"""A throttled or failing AWS service is `StoreUnavailable` (a 503 with Retry-After at the
API), any other vendor error a `BackendError`."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from fanout.backends.aws.clients import translated
from fanout.errors import BackendError, StoreUnavailable


def refusal(code: str) -> Exception:
    error: Exception = ClientError({"Error": {"Code": code, "Message": "no"}}, "PutItem")
    return error


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_throttling_is_store_unavailable(code: str) -> None:
    with pytest.raises(StoreUnavailable), translated("writing a job"):
        raise refusal(code)


def test_another_vendor_error_is_a_backend_error_but_not_unavailable() -> None:
    with pytest.raises(BackendError) as raised, translated("writing a job"):
        raise refusal("ValidationException")
    assert not isinstance(raised.value, StoreUnavailable)
