"""Lambda events made from what the moto server actually holds, in the shapes Lambda's event
sources deliver them: SQS messages received from a queue, DynamoDB stream records read from the
table's stream, an S3 notification for an object put in a bucket.

Each event goes through JSON, as Lambda's does: no datetime or bytes reaches a handler."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Mapping
from typing import Any

Event = dict[str, Any]
REGION = "us-east-1"


def as_lambda_sends(event: Event) -> Event:
    decoded: Event = json.loads(json.dumps(event, default=_json_default))
    return decoded


def _json_default(value: Any) -> Any:
    if hasattr(value, "timestamp"):  # GetRecords' ApproximateCreationDateTime
        return int(value.timestamp())
    if isinstance(value, bytes):  # a binary attribute ("B")
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON")


def sqs_event(sqs: Any, queue_url: str, max_messages: int = 10) -> Event:
    """Receive up to `max_messages` from the queue, as the SQS event source mapping does, and
    hand them over as Lambda's SQS batch event."""
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    messages = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=max_messages,
        MessageSystemAttributeNames=["All"],
        MessageAttributeNames=["All"],
        WaitTimeSeconds=0,
    ).get("Messages", [])
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m.get("Attributes", {}),
            "messageAttributes": m.get("MessageAttributes", {}),
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": REGION,
        }
        for m in messages
    ]
    return as_lambda_sends({"Records": records})


def stream_event(dynamodb: Any, streams: Any, table: str, after: dict[str, str]) -> Event:
    """Every stream record of the table past the sequence numbers in `after` (shard id: last
    sequence number read, updated here), as the DynamoDB event source mapping delivers a batch:
    GetRecords' records with the stream's ARN added."""
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    records: list[Event] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        shard_id = shard["ShardId"]
        position = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after[shard_id]}
            if shard_id in after
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, **position)
        got = streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)
        for record in got["Records"]:
            records.append({**record, "eventSourceARN": arn})
            after[shard_id] = record["dynamodb"]["SequenceNumber"]
    return as_lambda_sends({"Records": records})


def s3_event(s3: Any, bucket: str, key: str) -> Event:
    """The ObjectCreated:Put notification S3 sends for the object now at `key`. Keys in
    notifications are URL-encoded with `+` for spaces."""
    from urllib.parse import quote_plus

    head = s3.head_object(Bucket=bucket, Key=key)
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": head["LastModified"].isoformat(),
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "fanout-input",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {
                "key": quote_plus(key, safe="/"),
                "size": head["ContentLength"],
                "eTag": head["ETag"].strip('"'),
                "sequencer": f"{int(head['LastModified'].timestamp() * 1e6):X}",
            },
        },
    }
    return as_lambda_sends({"Records": [record]})


_sequencers = itertools.count(0x62E99A88DC407460)


def s3_notification(sqs: Any, queue_url: str) -> Event:
    """The notification S3 sent to the queue for the latest object created (S3 hands Lambda the
    same JSON), taken off the queue. The emulator sends it as the PUT completes, so it is there
    now. moto leaves out `sequencer`, which S3 sets on every ObjectCreated record
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html)
    and ingest keys its dedupe on: a growing one is added where missing, as a later PUT's is."""
    for _ in range(10):  # S3's s3:TestEvent, sent when the notification is configured, first
        [message] = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0)["Messages"]
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        event: Event = json.loads(message["Body"])
        if "Records" in event:
            for record in event["Records"]:
                record["s3"]["object"].setdefault("sequencer", f"{next(_sequencers):018X}")
            return event
    raise AssertionError(f"no ObjectCreated notification on {queue_url}")


def acknowledge(sqs: Any, queue_url: str, event: Event, response: Mapping[str, Any] | None) -> None:
    """What the SQS event source mapping does with a batch's response: delete the messages not
    reported in `batchItemFailures` (those come back after their visibility timeout)."""
    failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
    for record in event["Records"]:
        if record["messageId"] not in failed:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=record["receiptHandle"])
