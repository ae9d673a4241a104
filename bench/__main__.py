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
    mutation,
    scaling,
    soak,
    status,
    throughput,
    webhooks,
)

# Each benchmark: its module (with `add_arguments` and `run`) and its one-line help.
BENCHMARKS = {
    "throughput": (throughput, "N no-op items, POST to webhook"),
    "compare": (compare, "fanout vs Celery vs multiprocessing, HTTP load, cold start"),
    "cost": (cost, "AWS requests and $ per million items, on moto"),
    "export": (export, "results as JSON Lines vs JSON pages"),
    "status": (status, "GET /jobs/{id} vs a bare FastAPI route"),
    "chaos": (
        chaos,
        "kills, crashes at each step, a full disk, twin servers: fault | figure | pass",
    ),
    "abuse": (abuse, "hostile receivers and slow clients vs well-behaved ones"),
    "coldstart": (coldstart, "Lambda handler imports vs their floors"),
    "soak": (soak, "the data dir under a steady load, with retention and without"),
    "image": (image, "the Lambda container image's own layer, in MB"),
    "scaling": (scaling, "one worker vs two, beside a multiprocessing pool"),
    "load": (load, "200 clients posting and polling small jobs, fanout and Celery"),
    "webhooks": (webhooks, "CPU per webhook attempt, fanout's sender vs httpx's client"),
    "mutation": (mutation, "mutation score of the core and the SQLite store (mutmut; slow)"),
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    benchmarks = parser.add_subparsers(dest="benchmark", required=True)
    for name, (module, summary) in BENCHMARKS.items():
        module.add_arguments(benchmarks.add_parser(name, help=summary, description=module.__doc__))
    args = parser.parse_args()
    module, _ = BENCHMARKS[args.benchmark]
    result: int = module.run(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
