"""Uploads on the SQLite service, end to end through `Fanout` (the HTTP routes are
tests/api/test_uploads.py, outside the mutation run's selection): a target per format, with a
random name carrying the format's extension, the PUT's Content-Type and its expiry; the PUT
received under that name, then read by a job naming it as `items_url`; and the refusals where
a deployment takes no uploads or does not receive them itself.

Written to kill mutants `python -m bench mutation` found with no test in
`fanout/service/uploading.py` (issue 13). In tests/contract/ because the mutation run selects
this folder already (changing its selection resets every mutmut verdict).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from fanout.errors import UploadRefused
from fanout.models import TenantId
from fanout.service import Fanout, JobRequest
from fanout.settings import Settings

TENANT = TenantId("tenant-a")


@pytest.mark.parametrize(
    ("format", "extension", "content_type"),
    [
        ("json", "json", "application/json"),
        ("jsonl", "jsonl", "application/x-ndjson"),
        ("ndjson", "jsonl", "application/x-ndjson"),
        ("csv", "csv", "text/csv"),
    ],
)
def test_an_upload_target_names_a_random_file_of_its_format_for_a_while(
    service: Fanout, settings: Settings, format: str, extension: str, content_type: str
) -> None:
    before = time.time()
    target = service.create_upload(TENANT, format)
    other = service.create_upload(TENANT, format)

    assert re.fullmatch(rf"uploads/[0-9a-f]{{32}}\.{extension}", target.items_url)
    assert target.items_url != other.items_url
    assert target.headers == {"content-type": content_type}
    lasting = settings.upload_url_seconds
    assert int(before + lasting) <= target.expires_at <= time.time() + lasting


def test_an_uploaded_file_is_read_by_the_job_that_names_it(service: Fanout) -> None:
    target = service.create_upload(TENANT, "ndjson")
    url = urlsplit(target.url)
    query = parse_qs(url.query)
    name = url.path.rsplit("/", 1)[1]

    sink = service.receive_upload(name, int(query["expires"][0]), query["signature"][0])
    sink.write(b"1\n2\n")
    sink.write(b"3\n")
    sink.commit()
    job, _ = service.submit(
        TENANT, JobRequest(task="echo", items=[], params={}, items_url=target.items_url)
    )

    assert job.total == 3


def test_a_deployment_without_uploads_refuses_them_saying_why(
    service: Fanout, settings: Settings
) -> None:
    backend = dataclasses.replace(service.backend, uploads=None, upload_receiver=None)
    without = Fanout(backend, settings)

    with pytest.raises(UploadRefused) as create:
        without.create_upload(TENANT, "csv")
    with pytest.raises(UploadRefused) as receive:
        without.receive_upload("x.csv", int(time.time()) + 60, "0" * 64)

    assert str(create.value) == "this deployment takes no uploads"
    assert str(receive.value) == "uploads go where POST /uploads said, not to this service"


def test_each_upload_target_is_logged_with_its_tenant(
    service: Fanout, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="fanout"):
        target = service.create_upload(TENANT, "csv")

    assert f"upload {target.items_url} for tenant {TENANT}" in [
        r.getMessage() for r in caplog.records
    ]
