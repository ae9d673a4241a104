"""`python -m bench <benchmark>`; see bench/README.md."""

from __future__ import annotations

import argparse

from bench import throughput


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    benchmarks = parser.add_subparsers(dest="benchmark", required=True)
    throughput.add_arguments(
        benchmarks.add_parser(
            "throughput", help="N no-op items, POST to webhook", description=throughput.__doc__
        )
    )
    args = parser.parse_args()
    return throughput.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
