"""`python -m bench <benchmark>`; see bench/README.md."""

from __future__ import annotations

import argparse

from bench import compare, cost, throughput


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    benchmarks = parser.add_subparsers(dest="benchmark", required=True)
    throughput.add_arguments(
        benchmarks.add_parser(
            "throughput", help="N no-op items, POST to webhook", description=throughput.__doc__
        )
    )
    compare.add_arguments(
        benchmarks.add_parser(
            "compare",
            help="fanout vs Celery vs multiprocessing, HTTP load, cold start",
            description=compare.__doc__,
        )
    )
    cost.add_arguments(
        benchmarks.add_parser(
            "cost", help="AWS requests and $ per million items, on moto", description=cost.__doc__
        )
    )
    args = parser.parse_args()
    if args.benchmark == "cost":
        return cost.run(args)
    return compare.run(args) if args.benchmark == "compare" else throughput.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
