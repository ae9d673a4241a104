"""`python -m bench image`: the size of the Lambda container image's own layer.

Every function runs the image built from the root `Dockerfile`: `python:3.11-slim`, then the
dependencies of `fanout[aws]` with `awslambdaric`, then the package itself (two layers, so a
code change rebuilds only the second). The base image is fixed (and cannot be pulled on a
machine without a container registry); the layers the project controls are those installs, as
much as `pip install ".[aws]" "awslambdaric>=3"` puts in place. This
bench runs the same install into an empty directory (`pip install --target`, byte-compiled
as the image's is), and prints its size on disk and as a gzipped tar (how a registry stores a
layer, and about what Lambda pulls on a cold start of a new image), with the largest
distributions in it beside the whole: the figure to watch when adding a dependency.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# What the Dockerfile's two install steps put in place together.
REQUIREMENTS = [".[aws]", "awslambdaric>=3"]
MB = 1_000_000


def install(target: Path, requirements: list[str]) -> None:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += ["--target", str(target), *requirements]
    subprocess.run(command, cwd=ROOT, check=True, timeout=900)


def distributions(layer: Path) -> dict[str, int]:
    """Bytes on disk of each distribution in the layer, by its `*.dist-info/RECORD` (files no
    record names count as `(other)`)."""
    owner: dict[Path, str] = {}
    for record in layer.glob("*.dist-info/RECORD"):
        name = record.parent.name.split("-")[0]
        for line in record.read_text().splitlines():
            path = line.split(",")[0]
            if path:
                owner[(layer / path).resolve()] = name
    sizes: Counter[str] = Counter()
    for file in layer.rglob("*"):
        if file.is_file():
            sizes[owner.get(file.resolve(), "(other)")] += file.stat().st_size
    return dict(sizes)


def compressed(layer: Path) -> int:
    """Bytes of the layer as a gzipped tar."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6) as zipped,
        tarfile.open(fileobj=zipped, mode="w") as tar,
    ):
        tar.add(layer, arcname=".")
    return len(buffer.getvalue())


def figures(layer: Path, top: int = 12) -> dict[str, Any]:
    sizes = distributions(layer)
    total = sum(sizes.values())
    return {
        "benchmark": "image",
        "requirements": REQUIREMENTS,
        "layer_bytes": total,
        "layer_gzip_bytes": compressed(layer),
        "largest": dict(Counter(sizes).most_common(top)),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layer", type=Path, default=None, help="measure this directory; do not install"
    )
    parser.add_argument("--json", action="store_true", help="write the figures as JSON to stdout")


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="fanout-image-") as scratch:
        layer = args.layer
        if layer is None:
            layer = Path(scratch) / "layer"
            install(layer, REQUIREMENTS)
        found = figures(layer)
    out = sys.stderr if args.json else sys.stdout
    print(
        f"image layer ({' '.join(REQUIREMENTS)} on python:3.11-slim):"
        f" {found['layer_bytes'] / MB:.1f} MB on disk,"
        f" {found['layer_gzip_bytes'] / MB:.1f} MB gzipped",
        file=out,
    )
    for name, size in found["largest"].items():
        share = 100 * size / found["layer_bytes"]
        print(f"  {name:<28} {size / MB:7.1f} MB  {share:4.1f}%", file=out)
    if args.json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
    return 0
