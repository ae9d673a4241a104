"""`python -m bench cost` at a tiny size: the job ends and every request is counted and priced.
Never asserts on dollar thresholds: those are the benchmark's finding, not its correctness."""

from __future__ import annotations

import argparse
import json
from datetime import date

import pytest

from bench import cost
from fanout import pricing
from tests.aws import moto
from tests.contract.support import BackendUnavailable, unavailable


@pytest.fixture
def moto_server() -> None:
    """The rule of every AWS test: without the moto server, a skip on a laptop, a failure in
    CI (where the dev extra installs it)."""
    try:
        moto.endpoint()
    except BackendUnavailable as error:
        unavailable("the moto server (the cost benchmark runs on it)", error)


@pytest.mark.usefixtures("moto_server")
def test_the_cost_benchmark_runs_a_small_job_and_prices_each_operation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser()
    cost.add_arguments(parser)
    args = parser.parse_args(["--items", "200", "--chunk-size", "50", "--json"])

    assert cost.run(args) == 0

    figures = json.loads(capsys.readouterr().out)
    # The bill says which prices it used (bench/README.md: "its date is printed").
    assert date.fromisoformat(figures["prices_as_of"]) == pricing.PRICES_AS_OF
    assert figures["region"] == "us-east-1"
    job = figures["job"]
    assert (job["status"], job["succeeded"], job["webhook_received"]) == ("succeeded", 200, True)
    operations = {(line["service"], line["operation"]) for line in figures["lines"]}
    assert {("dynamodb", "PutItem"), ("sqs", "ReceiveMessage"), ("lambda", "Invoke")} <= operations
    assert all(line["requests"] > 0 for line in figures["lines"])
    assert figures["per_million_items"] > 0
    assert any(line["write_units"] > 0 for line in figures["lines"])
    assert {peer["name"] for peer in figures["peers"]} >= {"seed's estimate, hand-built pipeline"}
    all_in = figures["all_in"]
    assert all_in["per_million_cold"] > all_in["per_million_warm"] > figures["per_million_items"]
    lines = all_in["lines_per_million"]
    assert all(lines[what] > 0 for what in ("S3 storage", "DynamoDB storage", "CloudWatch Logs"))
    assert any(what.startswith("INIT") and dollars > 0 for what, dollars in lines.items())


def test_the_all_in_bill_uses_the_templates_memory_and_retention() -> None:
    """bench/cost_allin.py prices compute at the functions' memory and storage for the
    retention the template deploys by default: they must not drift apart."""
    from bench import cost_allin
    from tests.test_infra import sam_template

    template = sam_template()
    assert template["Globals"]["Function"]["MemorySize"] == cost_allin.MEMORY_GB * 1024
    assert template["Parameters"]["RetentionDays"]["Default"] == cost_allin.RETENTION_DAYS
    assert template["Parameters"]["LogRetentionDays"]["Default"] == cost_allin.LOG_RETENTION_DAYS
