"""AWS list prices (us-east-1, on-demand, no free tier) and a bill for counted requests.

Sources, read on PRICES_AS_OF:
- Lambda: https://aws.amazon.com/lambda/pricing/ ($0.20 per 1M requests; x86 compute)
- SQS: https://aws.amazon.com/sqs/pricing/ (standard queue; each 64 KB chunk of a request's
  payload is billed as one request)
- DynamoDB: https://aws.amazon.com/dynamodb/pricing/on-demand/ (after the November 2024 cut;
  Streams reads made by Lambda triggers are free, GetRecords by anyone else is not)
- S3: https://aws.amazon.com/s3/pricing/ (S3 Standard requests)
- Step Functions: https://aws.amazon.com/step-functions/pricing/ (Express duration: first tier)
- S3 storage: https://aws.amazon.com/s3/pricing/ (S3 Standard, first 50 TB a month)
- DynamoDB storage: https://aws.amazon.com/dynamodb/pricing/on-demand/ (Standard table class;
  each item and index entry counts 100 bytes of overhead besides its attributes)
- CloudWatch Logs: https://aws.amazon.com/cloudwatch/pricing/ (Standard log class: ingestion,
  archived storage)
- Lambda INIT: billed as duration at the function's memory, like an invocation's
  (https://aws.amazon.com/lambda/pricing/; container images always have been)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

PRICES_AS_OF = date(2026, 11, 27)
REGION = "us-east-1"

LAMBDA_PER_MILLION_REQUESTS = 0.20
LAMBDA_PER_GB_SECOND = 0.0000166667
SQS_PER_MILLION_REQUESTS = 0.40
SQS_BILLING_CHUNK = 64 * 1024
DYNAMODB_PER_MILLION_WRU = 0.625
DYNAMODB_PER_MILLION_RRU = 0.125
STREAMS_PER_MILLION_READ_REQUESTS = 0.20
S3_PER_THOUSAND_PUT = 0.005  # PUT, COPY, POST, LIST
S3_PER_THOUSAND_GET = 0.0004  # GET, SELECT and every other request
STANDARD_PER_THOUSAND_TRANSITIONS = 0.025
EXPRESS_PER_MILLION_REQUESTS = 1.00
EXPRESS_PER_GB_SECOND = 0.00001667
S3_STANDARD_PER_GB_MONTH = 0.023
DYNAMODB_STORAGE_PER_GB_MONTH = 0.25
DYNAMODB_ITEM_OVERHEAD = 100  # bytes of storage per item and per index entry
LOGS_INGESTION_PER_GB = 0.50
LOGS_STORAGE_PER_GB_MONTH = 0.03
HOURS_PER_MONTH = 730  # how AWS turns byte-hours into GB-months

S3_PUT_CLASS = frozenset(
    {
        "PutObject",
        "CopyObject",
        "PostObject",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPartCopy",
        "CompleteMultipartUpload",
        "ListObjects",
        "ListObjectsV2",
        "ListObjectVersions",
        "ListBuckets",
        "ListMultipartUploads",
        "ListParts",
    }
)
S3_FREE = frozenset({"DeleteObject", "DeleteObjects", "AbortMultipartUpload"})
DYNAMODB_WRITES = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)


@dataclass(frozen=True)
class Capacity:
    """DynamoDB on-demand request units consumed (what ReturnConsumedCapacity reports)."""

    read_units: float = 0.0
    write_units: float = 0.0

    def __add__(self, other: Capacity) -> Capacity:
        return Capacity(self.read_units + other.read_units, self.write_units + other.write_units)


def consumed(operation: str, report: Mapping[str, float]) -> Capacity:
    """One `ConsumedCapacity` entry of a DynamoDB response as read and write units. With
    `TOTAL`, only `CapacityUnits` is given, and the operation says which kind they are."""
    if "ReadCapacityUnits" in report or "WriteCapacityUnits" in report:
        return Capacity(report.get("ReadCapacityUnits", 0.0), report.get("WriteCapacityUnits", 0.0))
    units = report.get("CapacityUnits", 0.0)
    return Capacity(write_units=units) if operation in DYNAMODB_WRITES else Capacity(units)


def sqs_requests(payload_bytes: int) -> int:
    """Billed requests for one SQS call carrying `payload_bytes` (a batch's bodies together)."""
    return max(1, math.ceil(payload_bytes / SQS_BILLING_CHUNK))


def request_price(service: str, operation: str) -> float:
    """Dollars for one request of `operation`. DynamoDB requests are priced by the capacity
    they consume instead (see `Capacity`), so they cost nothing here. Raises KeyError for a
    service this table does not price."""
    if service == "lambda":
        return LAMBDA_PER_MILLION_REQUESTS / 1e6
    if service == "sqs":
        return SQS_PER_MILLION_REQUESTS / 1e6
    if service == "dynamodb":
        return 0.0
    if service == "dynamodbstreams":
        return STREAMS_PER_MILLION_READ_REQUESTS / 1e6 if operation == "GetRecords" else 0.0
    if service == "s3":
        if operation in S3_FREE:
            return 0.0
        per_thousand = S3_PER_THOUSAND_PUT if operation in S3_PUT_CLASS else S3_PER_THOUSAND_GET
        return per_thousand / 1e3
    if service == "stepfunctions":
        if operation == "StateTransition":
            return STANDARD_PER_THOUSAND_TRANSITIONS / 1e3
        if operation == "ExpressRequest":
            return EXPRESS_PER_MILLION_REQUESTS / 1e6
    raise KeyError(f"no list price for {service} {operation}")


@dataclass(frozen=True)
class Bill:
    lines: dict[tuple[str, str], float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.lines.values())


def price(
    requests: Mapping[tuple[str, str], int],
    capacity: Capacity = Capacity(),
    gb_seconds: Mapping[str, float] | None = None,
) -> Bill:
    """Dollars for counted requests by (service, operation), with DynamoDB's consumed capacity
    and, optionally, compute by service (`lambda`, or `stepfunctions` for Express duration)."""
    lines = {key: count * request_price(*key) for key, count in requests.items()}
    if capacity.write_units:
        lines["dynamodb", "write request units"] = (
            capacity.write_units * DYNAMODB_PER_MILLION_WRU / 1e6
        )
    if capacity.read_units:
        lines["dynamodb", "read request units"] = (
            capacity.read_units * DYNAMODB_PER_MILLION_RRU / 1e6
        )
    per_gb_second = {"lambda": LAMBDA_PER_GB_SECOND, "stepfunctions": EXPRESS_PER_GB_SECOND}
    for service, seconds in (gb_seconds or {}).items():
        lines[service, "GB-seconds"] = seconds * per_gb_second[service]
    return Bill(lines)


# What one unit of each kind of request a job's usage counts costs (`fanout.models.Usage`).
USAGE_PRICES: dict[str, float] = {
    "dynamodb write units": DYNAMODB_PER_MILLION_WRU / 1e6,
    "dynamodb read units": DYNAMODB_PER_MILLION_RRU / 1e6,
    "sqs requests": SQS_PER_MILLION_REQUESTS / 1e6,
    "s3 put requests": S3_PER_THOUSAND_PUT / 1e3,
    "s3 get requests": S3_PER_THOUSAND_GET / 1e3,
}


def usage_cost(requests: Mapping[str, float]) -> dict[str, float]:
    """Dollars by kind for a job's counted requests, at the list prices above. Raises KeyError
    for a kind this table does not price, as `request_price` does: a kind the meter counts but
    nobody priced would otherwise show as free."""
    return {kind: count * _usage_price(kind) for kind, count in requests.items()}


def _usage_price(kind: str) -> float:
    if kind not in USAGE_PRICES:
        raise KeyError(f"no list price for {kind}")
    return USAGE_PRICES[kind]
