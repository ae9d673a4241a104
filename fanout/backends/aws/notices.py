"""The notify queue on SQS: one message per completion event, `{"event_id", "job_id"}`, which
triggers the notifier. The event itself (payload, attempts, next attempt) stays on its job item;
a retry soon enough for SQS's delay is announced again with that delay."""

from __future__ import annotations

import logging
import math
from typing import Any

from pydantic_core import from_json, to_json

from fanout.backends.aws.clients import error_code, translated
from fanout.backends.aws.queue import STALE
from fanout.errors import BackendError
from fanout.models import EventId, JobId, Notice

MAX_DELAY = 900  # SendMessage's DelaySeconds: at most 15 minutes
log = logging.getLogger("fanout.sqs")


class SqsNotificationQueue:
    def __init__(
        self, client: Any, queue_url: str, wait_seconds: int = 0, visibility_timeout: int = 60
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.wait_seconds = wait_seconds
        self.visibility_timeout = visibility_timeout

    def announce(self, notice: Notice, delay: float = 0.0) -> None:
        # Rounded up, so a notice never arrives before its event is due.
        body = to_json({"event_id": notice.event_id, "job_id": notice.job_id}).decode()
        with translated("sending a webhook notice"):
            self.client.send_message(
                QueueUrl=self.queue_url,
                MessageBody=body,
                DelaySeconds=max(0, min(MAX_DELAY, math.ceil(delay))),
            )

    def receive(self, max_messages: int) -> list[Notice]:
        with translated("receiving webhook notices"):
            response = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=max(1, min(10, max_messages)),
                VisibilityTimeout=self.visibility_timeout,
                WaitTimeSeconds=self.wait_seconds,
            )
        notices = []
        for message in response.get("Messages", []):
            try:
                notice = notice_of(message["Body"])
            except (ValueError, KeyError, TypeError):
                log.error("dropping a message that is not a notice: %r", message["Body"][:200])
                self.delete(message["ReceiptHandle"])
                continue
            notices.append(Notice(notice.event_id, notice.job_id, message["ReceiptHandle"]))
        return notices

    def delete(self, receipt: str) -> None:
        try:
            self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)
        except Exception as error:
            if error_code(error) not in STALE:
                raise BackendError(f"deleting a webhook notice: {error}") from error


def notice_of(body: str) -> Notice:
    """A notice from a message body; raises ValueError, KeyError or TypeError if it is not one."""
    fields = from_json(body)
    return Notice(EventId(str(fields["event_id"])), JobId(str(fields["job_id"])))
