"""`python -m bench <benchmark>`; see bench/README.md."""

from __future__ import annotations

import argparse

from bench import (
    abuse,
    chaos,
    coldstart,
    compare,
    cost,
    export,
    image,
    load,
    scaling,
    soak,
    status,
    throughput,
)


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
    export.add_arguments(
        benchmarks.add_parser(
            "export", help="results as JSON Lines vs JSON pages", description=export.__doc__
        )
    )
    status.add_arguments(
        benchmarks.add_parser(
            "status", help="GET /jobs/{id} vs a bare FastAPI route", description=status.__doc__
        )
    )
    chaos.add_arguments(
        benchmarks.add_parser(
            "chaos",
            help="kills, crashes at each step, a full disk, twin servers: fault | figure | pass",
            description=chaos.__doc__,
        )
    )
    abuse.add_arguments(
        benchmarks.add_parser(
            "abuse",
            help="hostile receivers and slow clients vs well-behaved ones",
            description=abuse.__doc__,
        )
    )
    coldstart.add_arguments(
        benchmarks.add_parser(
            "coldstart",
            help="Lambda handler imports vs their floors",
            description=coldstart.__doc__,
        )
    )
    soak.add_arguments(
        benchmarks.add_parser(
            "soak",
            help="the data dir under a steady load, with retention and without",
            description=soak.__doc__,
        )
    )
    image.add_arguments(
        benchmarks.add_parser(
            "image", help="the Lambda container image's own layer, in MB", description=image.__doc__
        )
    )
    scaling.add_arguments(
        benchmarks.add_parser(
            "scaling",
            help="one worker vs two, beside a multiprocessing pool",
            description=scaling.__doc__,
        )
    )
    load.add_arguments(
        benchmarks.add_parser(
            "load",
            help="200 clients posting and polling small jobs, fanout and Celery",
            description=load.__doc__,
        )
    )
    args = parser.parse_args()
    runs = {
        "chaos": chaos.run,
        "coldstart": coldstart.run,
        "compare": compare.run,
        "cost": cost.run,
        "export": export.run,
        "image": image.run,
        "load": load.run,
        "scaling": scaling.run,
        "soak": soak.run,
        "status": status.run,
        "abuse": abuse.run,
    }
    return runs.get(args.benchmark, throughput.run)(args)


if __name__ == "__main__":
    raise SystemExit(main())
