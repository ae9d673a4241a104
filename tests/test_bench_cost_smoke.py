"""`python -m bench cost` at a tiny size: the job ends and every request is counted and priced.
Never asserts on dollar thresholds: those are the benchmark's finding, not its correctness."""

from __future__ import annotations

import argparse
import json

import pytest

from bench import cost

pytest.importorskip("moto.server", reason="the cost benchmark runs on the moto server")


def test_the_cost_benchmark_runs_a_small_job_and_prices_each_operation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser()
    cost.add_arguments(parser)
    args = parser.parse_args(["--items", "200", "--chunk-size", "50", "--json"])

    assert cost.run(args) == 0

    figures = json.loads(capsys.readouterr().out)
    job = figures["job"]
    assert (job["status"], job["succeeded"], job["webhook_received"]) == ("succeeded", 200, True)
    operations = {(line["service"], line["operation"]) for line in figures["lines"]}
    assert {("dynamodb", "PutItem"), ("sqs", "ReceiveMessage"), ("lambda", "Invoke")} <= operations
    assert all(line["requests"] > 0 for line in figures["lines"])
    assert figures["per_million_items"] > 0
    assert any(line["write_units"] > 0 for line in figures["lines"])
    assert {peer["name"] for peer in figures["peers"]} >= {"seed's estimate, hand-built pipeline"}
