"""The local AWS recipe the README gives: `fanout aws emulator` (which also creates fanout's
resources), then `fanout serve --backend aws` pointed at it with the variables it printed; a job
runs to one signed webhook, with counts that are exact."""

from __future__ import annotations

import os
import re

import pytest

from tests.contract.support import unavailable
from tests.e2e.harness import Launcher, Process, Receiver, the_one_webhook
from tests.waiting import wait_until

TOTAL = 40
VARIABLE = re.compile(r"^([A-Z_]+)=(\S+)$", re.MULTILINE)


def printed_variables(emulator: Process) -> dict[str, str]:
    def ready() -> dict[str, str] | None:
        if not emulator.running():
            pytest.fail(f"the emulator exited: {emulator.output()}")
        found = dict(VARIABLE.findall(emulator.output()))
        return found if "FANOUT_NOTIFY_QUEUE_URL" in found else None

    return wait_until(ready, 60, "the emulator to print its variables", every=0.1)


def test_the_emulator_recipe_runs_a_job_through_serve_on_the_aws_backend(
    fanout: Launcher, receiver: Receiver
) -> None:
    try:
        import moto.server  # noqa: F401  # what `fanout aws emulator` runs
    except ImportError as error:
        unavailable("moto's server", error)
    table = f"recipe-{os.getpid()}"
    emulator = fanout.command(
        ["aws", "emulator", "--port", "0"], env={"FANOUT_TABLE": table, "FANOUT_BUCKET": table}
    )
    variables = printed_variables(emulator)
    assert variables["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert variables["FANOUT_BACKEND"] == "aws"

    server = fanout.serve(workers=2, env=variables)
    job = server.submit(
        {
            "task": "echo",
            "items": list(range(TOTAL)),
            "chunk_size": 2,
            "max_concurrency": 8,
            "webhook": {"url": receiver.url},
        }
    )

    payload = the_one_webhook(server, receiver, job["id"], job["webhook"]["secret"], timeout=90)
    assert payload["data"]["counts"]["succeeded"] == TOTAL
    assert payload["data"]["output"] == f"s3://{table}/outputs/{job['id']}.jsonl"
    assert [r["output"] for r in server.results(job["id"])] == list(range(TOTAL))
    assert server.stop() == 0
    assert emulator.stop() == 0
