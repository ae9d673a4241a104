"""Cold-start import time of the Lambda API handler module, beside its dependencies alone.

Each figure is the median of fresh interpreters (`python -c`), alternating the two, timing the
`import` statement itself with `time.perf_counter()` (the interpreter's own start-up is the
same for both and is reported separately, as the whole process's wall time).
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.system import BenchError

ROOT = Path(__file__).resolve().parents[1]
HANDLER = "fanout.api.lambda_handler"
FALLBACK = "fanout.api.app"
BARE = "fastapi, mangum, boto3, pydantic"
PROBE = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"
# The handler builds its objects at import, from FANOUT_* settings; a region keeps boto3 from
# failing where none is configured. No call leaves the machine: only clients are built.
ENV = {"AWS_DEFAULT_REGION": "us-east-1"}


def handler_module() -> tuple[str, str | None]:
    """The module to time, and why it is not the handler when it is not."""
    if importlib.util.find_spec(HANDLER) is not None:
        return HANDLER, None
    return FALLBACK, f"{HANDLER} did not exist when measured; timed {FALLBACK} instead"


def _once(modules: str) -> tuple[float, float]:
    env = {**ENV, **os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(modules)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"import {modules} failed: {done.stderr[-800:]}")
    return float(done.stdout.strip().splitlines()[-1]), wall


def measure(runs: int = 10) -> dict[str, Any]:
    module, note = handler_module()
    timings: dict[str, list[tuple[float, float]]] = {module: [], BARE: []}
    for _ in range(runs):
        for modules in (BARE, module):
            timings[modules].append(_once(modules))
    report: dict[str, Any] = {"runs": runs, "module": module, "note": note}
    for modules, found in timings.items():
        key = "handler" if modules == module else "bare"
        report[key] = {
            "imports": modules,
            "median_import_seconds": statistics.median(i for i, _ in found),
            "median_process_seconds": statistics.median(w for _, w in found),
            "import_seconds": [i for i, _ in found],
        }
    report["ratio"] = (
        report["handler"]["median_import_seconds"] / (report["bare"]["median_import_seconds"])
    )
    return report
