"""`python -m bench throughput` at a tiny size: it completes, prints figures, and leaves no
server behind. Never asserts on timings."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import psutil
from rich.console import Console

from bench.fanout_system import FanoutSystem
from bench.rss import process_tree
from bench.throughput import measure

ROOT = Path(__file__).resolve().parents[1]


def test_the_throughput_benchmark_prints_its_figures_for_a_tiny_run() -> None:
    command = ["throughput", "--sizes", "200", "--repeat", "1", "--workers", "1", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "bench", *command],
        cwd=ROOT,
        capture_output=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    [result] = report["results"]
    assert result["system"] == "fanout"
    assert result["items"] == 200
    assert result["repeats"] == 1
    assert result["items_per_second"] > 0
    assert result["peak_rss_bytes"] > 0
    assert set(result["median_milestones"]) == {"accepted", "started", "finished", "webhook"}
    assert "items/s" in done.stderr.decode()  # the table, on stderr beside the JSON


class RecordingFanout(FanoutSystem):
    """Notes the server's process tree just before stopping it."""

    tree: list[psutil.Process]

    def stop(self) -> None:
        self.tree = process_tree(self.root_pids())
        super().stop()


def _gone(process: psutil.Process) -> bool:
    try:
        return bool(process.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def test_the_benchmark_stops_every_process_of_the_server_it_started() -> None:
    system = RecordingFanout(workers=1)
    measurements, session_peak = measure(system, [50], 1, 120.0, Console(file=io.StringIO()))
    assert [(m.items, len(m.seconds)) for m in measurements] == [(50, 1)]
    assert session_peak >= measurements[0].peak_rss_bytes > 0
    assert len(system.tree) >= 3  # serve, the forkserver, a worker
    assert all(_gone(process) for process in system.tree)
