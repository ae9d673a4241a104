"""`python -m bench abuse` at a tiny size: it completes and prints every figure. Never asserts on
timings (the figures belong to the closing note and bench/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_abuse_benchmark_prints_its_figures_for_a_tiny_run() -> None:
    command = ["abuse", "--slowloris", "5", "--drippers", "1", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "bench", *command],
        cwd=ROOT,
        capture_output=True,
        timeout=240,
        check=False,
    )

    assert done.returncode == 0, done.stderr.decode()
    figures = json.loads(done.stdout)
    assert figures["peak_rss_mb"]["receiver_1GiB"] > 0
    assert figures["peak_rss_mb"]["receiver_empty"] > 0
    assert set(figures["healthy_webhook_delay_s"]) == {"beside_1_drippers", "alone"}
    assert figures["slowloris"]["connections"] == 5
    assert figures["slowloris"]["closed_within_30s"] == 5
