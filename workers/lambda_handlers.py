"""The Lambda entry points of the queue side: each turns its event into calls to `fanout.service`.

The service is built once per container, on the first event (Lambda reuses a container for many
events). Each `handle_*` function takes the service explicitly, so tests run it on any backend.

SQS sources use partial batch responses (`ReportBatchItemFailures`): a failed record comes back
alone after its visibility timeout, and the ones that succeeded are not run again.

Cold start: this module imports no web framework and no HTTP client (the notifier's is imported
when a notifier runs), nor the input-file reader (when S3 ingest runs), and reads SQS records as
the plain dicts Lambda delivers. Powertools' batch utility would do the same in a few lines more,
but importing it imports every parser model of Powertools (some 100 ms) whenever pydantic is
loaded, as here it always is.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from fanout.backends.aws.notices import notice_of
from fanout.backends.aws.queue import DEAD
from fanout.errors import InvalidJob
from fanout.models import ChunkRef, Delivery, JobId, WebhookEvent
from fanout.readers import TooLarge
from fanout.service import Fanout
from fanout.settings import Settings
from fanout.wiring import build

if TYPE_CHECKING:
    from fanout.webhooks import Attempt

log = logging.getLogger("fanout.lambda")
Event = dict[str, Any]
SQSRecord = dict[str, Any]  # one of an SQS event's "Records", as Lambda delivers it
NOTIFY_BATCH = 32


class ItemFailure(TypedDict):
    itemIdentifier: str


class BatchResponse(TypedDict):
    """Lambda's partial batch response for SQS: the message ids to deliver again."""

    batchItemFailures: list[ItemFailure]


@functools.cache
def service() -> Fanout:
    return build(Settings())


def delivery(record: SQSRecord, receipt_prefix: str = "") -> Delivery:
    """A chunk message (`{"job_id", "start", "end"}`, as SqsChunkQueue sends it) as a delivery.
    SqsChunkQueue marks a dead letter's receipt with a prefix, so it deletes from the DLQ."""
    body = json.loads(record["body"])
    return Delivery(
        ChunkRef(JobId(body["job_id"]), int(body["start"]), int(body["end"])),
        receipt=receipt_prefix + record["receiptHandle"],
        receive_count=int(record["attributes"]["ApproximateReceiveCount"]),
    )


def each_record(event: Event, handle: Callable[[SQSRecord], None]) -> BatchResponse:
    """Run `handle` on every record; report the ones that raised as the batch's failures
    (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html). When every
    record failed they are all reported, as for a partial failure, rather than failing the
    invocation: the same records come back either way, and errors stay for real crashes."""
    failures: list[ItemFailure] = []
    for record in event["Records"]:
        try:
            handle(record)
        except Exception:
            log.exception("message %s failed", record["messageId"])
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def handle_chunks(fanout: Fanout, event: Event) -> BatchResponse:
    return each_record(event, lambda record: fanout.process(delivery(record)))


def handle_dead_letters(fanout: Fanout, event: Event, receipt_prefix: str = DEAD) -> BatchResponse:
    def handle(record: SQSRecord) -> None:
        fanout.process_dead_letter(delivery(record, receipt_prefix))

    return each_record(event, handle)


def handle_notifications(fanout: Fanout, event: Event) -> BatchResponse | None:
    """A notify-queue batch (each message names one completion event, `{"event_id", "job_id"}`)
    or the schedule's sweep of overdue events; the batch's attempts are made concurrently. A
    notice whose delivery fails succeeds anyway: the service announces the retry with a delay,
    or leaves it to the sweep. Only a record that could not be handled at all (unreadable, the
    table failing) comes back."""
    from fanout.workers.notifier import deliver_now  # only where webhooks are sent

    if "Records" not in event:
        _log_failures(deliver_now(fanout, fanout.due_events(NOTIFY_BATCH)))
        return None
    due: list[WebhookEvent] = []

    def take(record: SQSRecord) -> None:
        found = fanout.notice_event(notice_of(record["body"]))
        if found is not None:
            due.append(found)

    response = each_record(event, take)
    _log_failures(deliver_now(fanout, due))
    return response


def _log_failures(attempts: list[Attempt | BaseException | None]) -> None:
    """An attempt that could not be recorded stays due: the sweep repeats it."""
    for attempt in attempts:
        if isinstance(attempt, BaseException):
            log.error("recording a webhook attempt failed", exc_info=attempt)
        elif attempt is not None and not attempt.delivered:
            log.warning("webhook not delivered: %s %s", attempt.status_code, attempt.error or "")


def handle_stream(fanout: Fanout, event: Event) -> None:
    """A failure fails the whole batch: Lambda retries it, halving it each time (the template's
    BisectBatchOnFunctionError). `aggregate` is idempotent under such retries."""
    fanout.aggregate(event["Records"])


def handle_removed_jobs(fanout: Fanout, event: Event) -> Mapping[JobId, int]:
    """A stream batch of removed job items (the template's filter; any other record is
    ignored): delete each job's S3 objects. A failure fails the whole batch, which Lambda
    retries in halves; deleting again what is gone already is harmless. Returns how many
    objects each job had."""
    return fanout.delete_job_objects(event["Records"])


def handle_input_files(fanout: Fanout, event: Event, s3: Any) -> list[str]:
    """Create a job from each new input file (the convention: `workers.input_files`).
    A file that can never become a job is logged and skipped: S3 would only retry it in vain.
    Returns the ids of the jobs created."""
    # Imported here: only this handler reads input files, and their job schema (pydantic models
    # built at import) is the largest part of it; the chunk worker's cold start skips it.
    from fanout.workers import input_files

    created = []
    for file in input_files.input_files(event):
        found = s3.get_object(Bucket=file.bucket, Key=file.key)
        metadata, body = found.get("Metadata", {}), found["Body"]
        try:
            tenant, request = input_files.job_request(file.key, metadata, body, fanout.settings)
            job_id = input_files.submit_once(fanout, tenant, request, file)
        except (input_files.UnreadableInput, InvalidJob, TooLarge) as error:
            detail = getattr(error, "errors", "")
            log.error("s3://%s/%s is not a job: %s %s", file.bucket, file.key, error, detail)
            continue
        created.append(job_id)
    return created


# -- the handlers the template names -----------------------------------------------------------


def chunk_worker(event: Event, context: Any) -> BatchResponse:
    return handle_chunks(service(), event)


def dead_letter(event: Event, context: Any) -> BatchResponse:
    return handle_dead_letters(service(), event)


def notifier(event: Event, context: Any) -> BatchResponse | None:
    return handle_notifications(service(), event)


def aggregator(event: Event, context: Any) -> None:
    handle_stream(service(), event)


def job_objects(event: Event, context: Any) -> None:
    handle_removed_jobs(service(), event)


def reconciler(event: Event, context: Any) -> None:
    service().reconcile()


@functools.cache
def _s3() -> Any:
    from fanout.backends.aws.clients import Clients  # boto3: only on AWS

    return Clients.create().s3


def s3_ingest(event: Event, context: Any) -> list[str]:
    return handle_input_files(service(), event, _s3())
