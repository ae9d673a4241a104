"""The same job priced on the alternatives, at the list prices in `fanout.pricing`.

Assumptions, per million items of a no-op task (compute time left out, as for fanout):

- Step Functions Standard, inline Map: the iteration runs one Task state that invokes a Lambda
  function on the item. An inline Map's iterations are not charged themselves, the states
  inside them are (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-transitions.html):
  one transition per item, plus one Lambda request per item. Inline Map has no ItemBatcher, runs
  at most 40 iterations at once and carries its results in the 256 KiB state payload, so beyond
  about 2,000 items of 100 bytes it cannot hold this job's results at all; the figure is a floor.
- Step Functions Distributed Map with Express children: ItemBatcher groups items as fanout's
  chunks (same chunk size); the parent is charged one transition per child execution (same
  page); each child is one Express request, its duration (assumed 100 ms, billed at Express's
  64 MB minimum) and one Lambda request. ItemReader/ResultWriter's few S3 requests per run are
  left out.
- The seed's estimate for the hand-built S3 -> Lambda -> SQS -> Lambda -> DynamoDB -> Streams ->
  Lambda pipeline: $1.73 per million items (DESIGN.md's starting point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fanout import pricing

SEED_PER_MILLION = 1.73
EXPRESS_CHILD_SECONDS = 0.1
EXPRESS_MIN_GB = 64 / 1024


@dataclass(frozen=True)
class Peer:
    name: str
    per_million: float
    how: str


def standard_inline_map(transitions_per_item: int = 1) -> Peer:
    requests = {
        ("stepfunctions", "StateTransition"): transitions_per_item * 1_000_000,
        ("lambda", "Invoke"): 1_000_000,
    }
    return Peer(
        "Step Functions Standard, inline Map",
        pricing.price(requests).total,
        f"{transitions_per_item} transition per item (the iteration's Task state) "
        f"x ${pricing.STANDARD_PER_THOUSAND_TRANSITIONS * 1000:g}/M + 1 Lambda request per item",
    )


def distributed_map_express(chunk_size: int) -> Peer:
    children = math.ceil(1_000_000 / chunk_size)
    requests = {
        ("stepfunctions", "StateTransition"): children,
        ("stepfunctions", "ExpressRequest"): children,
        ("lambda", "Invoke"): children,
    }
    gb_seconds = {"stepfunctions": children * EXPRESS_CHILD_SECONDS * EXPRESS_MIN_GB}
    return Peer(
        "Step Functions Distributed Map, Express children",
        pricing.price(requests, gb_seconds=gb_seconds).total,
        f"{children:,} children of {chunk_size} items: 1 parent transition + 1 Express request"
        f" + {EXPRESS_CHILD_SECONDS * 1000:g} ms at 64 MB + 1 Lambda request each",
    )


def seed_estimate() -> Peer:
    return Peer("seed's estimate, hand-built pipeline", SEED_PER_MILLION, "DESIGN.md")


def peers(chunk_size: int) -> list[Peer]:
    return [standard_inline_map(), distributed_map_express(chunk_size), seed_estimate()]
