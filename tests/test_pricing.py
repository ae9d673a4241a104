"""The price table and the bill it makes of counted requests."""

from __future__ import annotations

from datetime import date

import pytest

from fanout import pricing
from fanout.pricing import Capacity, consumed, price, sqs_requests, usage_cost


def test_a_million_of_each_request_costs_its_list_price() -> None:
    bill = price(
        {
            ("lambda", "Invoke"): 1_000_000,
            ("sqs", "SendMessageBatch"): 1_000_000,
            ("s3", "PutObject"): 1_000_000,
            ("s3", "GetObject"): 1_000_000,
            ("dynamodbstreams", "GetRecords"): 1_000_000,
        }
    )
    assert bill.lines["lambda", "Invoke"] == pytest.approx(0.20)
    assert bill.lines["sqs", "SendMessageBatch"] == pytest.approx(0.40)
    assert bill.lines["s3", "PutObject"] == pytest.approx(5.00)
    assert bill.lines["s3", "GetObject"] == pytest.approx(0.40)
    assert bill.lines["dynamodbstreams", "GetRecords"] == pytest.approx(0.20)
    assert bill.total == pytest.approx(6.20)


def test_step_functions_standard_costs_25_dollars_per_million_transitions() -> None:
    bill = price({("stepfunctions", "StateTransition"): 1_000_000})
    assert bill.total == pytest.approx(25.0)


def test_express_is_priced_by_request_and_by_gb_second() -> None:
    bill = price(
        {("stepfunctions", "ExpressRequest"): 1_000_000}, gb_seconds={"stepfunctions": 1e6}
    )
    assert bill.lines["stepfunctions", "ExpressRequest"] == pytest.approx(1.00)
    assert bill.lines["stepfunctions", "GB-seconds"] == pytest.approx(16.67)


def test_dynamodb_is_priced_by_consumed_capacity_not_by_request() -> None:
    bill = price(
        {("dynamodb", "PutItem"): 10, ("dynamodb", "Query"): 10},
        Capacity(read_units=2_000_000, write_units=1_000_000),
    )
    assert bill.lines["dynamodb", "PutItem"] == 0
    assert bill.lines["dynamodb", "write request units"] == pytest.approx(0.625)
    assert bill.lines["dynamodb", "read request units"] == pytest.approx(0.25)
    assert bill.total == pytest.approx(0.875)


def test_a_total_capacity_report_counts_as_writes_for_a_write_and_reads_for_a_read() -> None:
    assert consumed("PutItem", {"CapacityUnits": 2.0}) == Capacity(write_units=2.0)
    assert consumed("Query", {"CapacityUnits": 0.5}) == Capacity(read_units=0.5)
    detailed = {"CapacityUnits": 3.0, "ReadCapacityUnits": 1.0, "WriteCapacityUnits": 2.0}
    assert consumed("TransactWriteItems", detailed) == Capacity(1.0, 2.0)
    assert Capacity(1, 2) + Capacity(3, 4) == Capacity(4, 6)


def test_an_sqs_request_is_billed_per_64_kb_of_payload() -> None:
    assert [sqs_requests(n) for n in (0, 1, 65_536, 65_537, 262_144)] == [1, 1, 1, 2, 4]


def test_deleting_s3_objects_and_describing_a_stream_are_free() -> None:
    bill = price({("s3", "DeleteObject"): 1000, ("dynamodbstreams", "DescribeStream"): 1000})
    assert bill.total == 0


def test_a_service_without_a_price_is_refused_not_priced_at_zero() -> None:
    with pytest.raises(KeyError, match="no list price"):
        price({("kinesis", "PutRecord"): 1})
    with pytest.raises(KeyError):
        price({("stepfunctions", "StartExecution"): 1})


def test_a_job_s_counted_requests_are_priced_at_the_list_prices() -> None:
    """A job's `usage.cost` (README, "Usage"): each kind of request at the price AWS lists,
    written out here from the pricing pages rather than read back from the module."""
    cost = usage_cost(
        {
            "dynamodb write units": 1_000_000,
            "dynamodb read units": 1_000_000,
            "sqs requests": 1_000_000,
            "s3 put requests": 1_000,
            "s3 get requests": 1_000,
        }
    )

    assert cost == pytest.approx(
        {
            "dynamodb write units": 0.625,
            "dynamodb read units": 0.125,
            "sqs requests": 0.40,
            "s3 put requests": 0.005,
            "s3 get requests": 0.0004,
        }
    )


def test_a_kind_of_request_without_a_price_is_refused_not_priced_at_zero() -> None:
    """As `price()` refuses a service it has no price for, so does a job's usage: a kind the
    meter counts but nobody priced must not show up as free."""
    with pytest.raises(KeyError, match="no list price for kinesis records"):
        usage_cost({"sqs requests": 1, "kinesis records": 1})
    with pytest.raises(KeyError):
        usage_cost({"sqs request": 1})  # a misspelt kind is unknown too


def test_the_prices_were_read_on_a_date_that_has_passed() -> None:
    assert date.today() >= pricing.PRICES_AS_OF
