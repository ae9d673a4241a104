"""The InputFiles port on every backend: a file put where the service reads its inputs comes
back as a byte stream; a missing one is not found; one elsewhere is refused without reading."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic_core import from_json

from fanout import tasks
from fanout.errors import InputNotFound, InputRefused
from fanout.models import TenantId
from fanout.ports import InputFiles
from fanout.service import Backend, Fanout, JobRequest
from fanout.settings import Settings

DATA = b'{"n": 1}\n{"n": 2}\n' * 50_000  # ~1 MB: read in pieces


class Place:
    """Where a test puts input files for one backend, and the URLs that name them."""

    def __init__(self, backend: Backend, settings: Settings) -> None:
        assert backend.inputs is not None, "every backend reads input files"
        self.inputs: InputFiles = backend.inputs
        self.settings = settings
        self.s3: Any = getattr(backend.inputs, "client", None)

    def put(self, name: str, data: bytes) -> str:
        if self.s3 is not None:
            bucket = self.inputs.bucket  # type: ignore[attr-defined]  # S3InputFiles
            self.s3.put_object(Bucket=bucket, Key=f"uploads/{name}", Body=data)
            return f"s3://{bucket}/uploads/{name}"
        path = self.settings.inputs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path.as_uri()

    def missing(self) -> str:
        if self.s3 is not None:
            return f"s3://{self.inputs.bucket}/uploads/missing.jsonl"  # type: ignore[attr-defined]
        return (self.settings.inputs / "missing.jsonl").as_uri()

    def elsewhere(self) -> list[str]:
        if self.s3 is not None:
            bucket = self.inputs.bucket  # type: ignore[attr-defined]
            return [
                "s3://another-bucket/uploads/a.jsonl",
                "file:///etc/passwd",
                "s3:///a.jsonl",
                f"s3://{bucket}/inputs/0190aa.json",  # another job's chunk inputs
                f"s3://{bucket}/results/0190aa/0-10/x.jsonl",  # another job's results
            ]
        return ["file:///etc/passwd", "../outside.jsonl", "s3://bucket/a.jsonl"]


@pytest.fixture
def place(backend: Backend, settings: Settings) -> Place:
    return Place(backend, settings)


def test_a_file_reads_back_as_a_stream_in_pieces(place: Place) -> None:
    url = place.put("a/items.jsonl", DATA)

    with place.inputs.open(url) as stream:
        pieces = list(iter(lambda: stream.read(64 * 1024), b""))

    assert b"".join(pieces) == DATA
    assert len(pieces) > 1


def test_a_missing_file_is_not_found(place: Place) -> None:
    with pytest.raises(InputNotFound):
        place.inputs.open(place.missing())


def test_a_file_elsewhere_is_refused(place: Place) -> None:
    for url in place.elsewhere():
        with pytest.raises(InputRefused):
            place.inputs.open(url)


def test_a_job_s_items_are_read_from_its_items_url(place: Place, backend: Backend) -> None:
    tasks.load([])
    url = place.put("orders.csv", b"n,name\n" + b"".join(b"%d,x\n" % i for i in range(3000)))
    service = Fanout(backend, place.settings)

    job, _ = service.submit(
        TenantId("t"), JobRequest(task="echo", items=(), params={}, items_url=url, chunk_size=1000)
    )

    assert job.total == 3000
    first = service.backend.queue.receive(10, 300.0)[0].chunk
    items = service.backend.chunks.start_chunk(first, time.time())
    assert items is not None
    assert from_json(items)[:2] == [
        {"n": str(first.start), "name": "x"},
        {"n": str(first.start + 1), "name": "x"},
    ]
