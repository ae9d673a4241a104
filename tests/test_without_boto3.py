"""The embedded default imports and runs with boto3 absent: the AWS backend is imported only
on its own path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROGRAM = """
import sys

class NoAws:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("boto3", "botocore", "moto"):
            raise ImportError(f"{name} is not installed here")
        return None

sys.meta_path.insert(0, NoAws())

from pathlib import Path

import fanout.api.app
import fanout.cli
from fanout.models import TenantId
from fanout.service import JobRequest
from fanout.settings import Settings
from fanout.wiring import build
from fanout.workers import chunk_worker

service = build(Settings(data_dir=Path(sys.argv[1])))
fanout.api.app.create_app(service.settings, service)
job, _ = service.submit(TenantId("t"), JobRequest(task="echo", items=[1, 2, 3], params={}))
while chunk_worker.poll_once(service):
    pass
done = service.get(TenantId("t"), job.id)
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in ("boto3", "botocore"))
print(done.status.value, done.succeeded, loaded)
"""


def test_the_embedded_default_imports_and_runs_a_job_without_boto3(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "succeeded 3 []"
