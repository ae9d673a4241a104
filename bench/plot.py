"""The compare benchmark's plot: items/s against N, log scales, one line per system, one panel
per workload. Runs past the cap are drawn as hollow triangles at N / cap, an upper bound."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any


def missing() -> list[str]:
    return [] if importlib.util.find_spec("matplotlib") else ["matplotlib"]


def draw(results: list[dict[str, Any]], cap: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r["workload"] for r in results))
    systems = list(dict.fromkeys(r["system"] for r in results))
    colours = {s: f"C{i}" for i, s in enumerate(systems)}
    figure, axes = plt.subplots(
        1, len(workloads), figsize=(5.2 * len(workloads), 4.6), squeeze=False
    )
    for axis, workload in zip(axes[0], workloads, strict=True):
        for system in systems:
            mine = [r for r in results if r["workload"] == workload and r["system"] == system]
            done = [r for r in mine if r["median_seconds"] is not None]
            capped = [r for r in mine if r["capped_runs"] and r["median_seconds"] is None]
            if done:
                axis.plot(
                    [r["items"] for r in done],
                    [r["items_per_second"] for r in done],
                    marker="o",
                    color=colours[system],
                    label=system,
                )
            if capped:
                axis.scatter(
                    [r["items"] for r in capped],
                    [r["items"] / cap for r in capped],
                    marker="v",
                    facecolors="none",
                    edgecolors=colours[system],
                    label=f"{system}: past the {cap:.0f} s cap",
                )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_title(workload)
        axis.set_xlabel("items per job (N)")
        axis.set_ylabel("items/s (median run)")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
