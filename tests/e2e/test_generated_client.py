"""A client generated with openapi-python-client from the document the real `fanout serve`
serves, used as a user of another language's generator would: a job, its results, and three
errors, each parsed into the document's own models."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.e2e.harness import Launcher, Server
from tests.waiting import wait_until

KEY = "key-a"
PACKAGE = "fanout_generated_client"


@pytest.fixture
def server(fanout: Launcher) -> Server:
    server = fanout.serve(workers=1, env={"FANOUT_API_KEYS": f"{KEY}:acme"})
    server.client.headers["authorization"] = f"Bearer {KEY}"
    return server


@pytest.fixture
def generated(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The client package generated from the served document, importable for this test."""
    document = tmp_path / "openapi.json"
    document.write_bytes(server.client.get("/openapi.json").content)
    generate = [sys.executable, "-m", "openapi_python_client", "generate", "--meta", "none"]
    done = subprocess.run(
        [*generate, "--path", str(document), "--output-path", str(tmp_path / PACKAGE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith(PACKAGE)]:
        monkeypatch.delitem(sys.modules, name)
    return importlib.import_module(PACKAGE)


@pytest.fixture
def clients(server: Server, generated: ModuleType) -> Iterator[tuple[Any, Any]]:
    """A client with the key and one without, closed after the test."""
    with (
        generated.AuthenticatedClient(base_url=server.url, token=KEY) as keyed,
        generated.Client(base_url=server.url) as anonymous,
    ):
        yield keyed, anonymous


def api(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.api.{name}")


def test_a_generated_client_runs_a_job_and_reads_its_results(
    generated: ModuleType, clients: tuple[Any, Any]
) -> None:
    client, _ = clients
    models = importlib.import_module(f"{PACKAGE}.models")
    body = models.JobCreate.from_dict({"task": "echo", "items": [3, 1, 2], "chunk_size": 1})

    created = api(generated, "jobs.create_job").sync_detailed(client=client, body=body)

    assert created.status_code == 202
    job = created.parsed
    assert isinstance(job, models.JobPublic)
    assert created.headers["location"] == f"/jobs/{job.id}"
    assert isinstance(job.created_at, datetime)

    def ended() -> Any:
        read = api(generated, "jobs.get_job").sync(job.id, client=client)
        return read if read.finished_at else None

    done = wait_until(ended, 30, "the job to end", every=0.1)
    assert (done.status.value, done.counts.succeeded) == ("succeeded", 3)
    assert isinstance(done.finished_at, datetime)
    page = api(generated, "jobs.get_job_results").sync(job.id, client=client)
    assert [(r.index, r.output) for r in page.items] == [(0, 3), (1, 1), (2, 2)]


def test_a_generated_client_parses_each_error_as_the_documents_problem(
    generated: ModuleType, clients: tuple[Any, Any]
) -> None:
    models = importlib.import_module(f"{PACKAGE}.models")
    client, anonymous = clients
    create = api(generated, "jobs.create_job")

    unknown_task = create.sync_detailed(
        client=client, body=models.JobCreate.from_dict({"task": "nope", "items": [1]})
    )
    no_key = create.sync_detailed(
        client=anonymous, body=models.JobCreate.from_dict({"task": "echo", "items": [1]})
    )
    missing = api(generated, "jobs.get_job").sync_detailed("no-such-job", client=client)

    for response, status in ((unknown_task, 422), (no_key, 401), (missing, 404)):
        assert response.status_code == status
        assert type(response.parsed).__name__ == "Problem", response.content
        assert response.parsed.status == status
    assert "nope" in unknown_task.parsed.to_dict()["errors"][0]["message"]
