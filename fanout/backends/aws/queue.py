"""The chunk queue on SQS: a standard queue whose redrive policy moves a message to the
dead-letter queue after `maxReceiveCount` receives. A message carries (job_id, start, end) only;
the chunk's items stay in the table."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from pydantic_core import from_json, to_json

from fanout.backends.aws.clients import error_code, translated
from fanout.errors import BackendError
from fanout.models import ChunkRef, Delivery, JobId

SEND_BATCH = 10  # SendMessageBatch and DeleteMessageBatch take at most 10 entries
MAX_VISIBILITY = 12 * 3600  # SQS's limit, in whole seconds
DEAD = "dead:"  # receipts of dead letters say so: a receipt is only good on its own queue
# Answers to a receipt whose message has gone (deleted, or received by someone else since).
STALE = {
    "ReceiptHandleIsInvalid",
    "MessageNotInflight",
    "AWS.SimpleQueueService.MessageNotInflight",
}
log = logging.getLogger("fanout.sqs")


class SqsChunkQueue:
    """Implements ChunkQueue, and Leases as no-ops: SQS does not say who holds a message, so
    its visibility timeout is the only lease (a dead consumer's message comes back after it)."""

    def __init__(
        self,
        client: Any,
        queue_url: str,
        dead_letter_queue_url: str,
        wait_seconds: int = 0,
        deleted_by_event_source: bool = False,
    ) -> None:
        """`deleted_by_event_source`: messages come from Lambda's SQS event source, which
        deletes each one its function did not report failed; deleting them here as well would
        be a second, billed request per chunk, so `delete` does nothing."""
        self.client = client
        self.queue_url = queue_url
        self.dead_letter_queue_url = dead_letter_queue_url
        self.wait_seconds = wait_seconds
        self.deleted_by_event_source = deleted_by_event_source

    def send(self, chunks: Sequence[ChunkRef]) -> None:
        for first in range(0, len(chunks), SEND_BATCH):
            entries = {
                str(i): {
                    "Id": str(i),
                    "MessageBody": to_json(
                        {"job_id": c.job_id, "start": c.start, "end": c.end}
                    ).decode(),
                }
                for i, c in enumerate(chunks[first : first + SEND_BATCH])
            }
            for _ in range(5):
                with translated("sending chunk messages"):
                    response = self.client.send_message_batch(
                        QueueUrl=self.queue_url, Entries=list(entries.values())
                    )
                entries = {f["Id"]: entries[f["Id"]] for f in response.get("Failed", [])}
                if not entries:
                    break
            else:
                raise BackendError(f"SQS refused {len(entries)} chunk messages five times")

    def receive(
        self, max_messages: int, visibility_timeout: float, owner: str = ""
    ) -> list[Delivery]:
        return self._receive(self.queue_url, "", max_messages, visibility_timeout)

    def receive_dead(
        self, max_messages: int, visibility_timeout: float, owner: str = ""
    ) -> list[Delivery]:
        return self._receive(self.dead_letter_queue_url, DEAD, max_messages, visibility_timeout)

    def release(self, receipt: str) -> None:
        self.extend(receipt, 0)

    def heartbeat(self, owner: str, now: float) -> None:
        """SQS keeps no consumers."""

    def reclaim(self, owner: str | None, now: float, dead_after: float) -> int:
        return 0

    def _receive(
        self, url: str, prefix: str, max_messages: int, visibility_timeout: float
    ) -> list[Delivery]:
        with translated("receiving chunk messages"):
            response = self.client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=max(1, min(10, max_messages)),
                VisibilityTimeout=_seconds(visibility_timeout),
                WaitTimeSeconds=self.wait_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        deliveries = []
        for message in response.get("Messages", []):
            receipt = prefix + message["ReceiptHandle"]
            try:
                body = from_json(message["Body"])
                chunk = ChunkRef(JobId(body["job_id"]), int(body["start"]), int(body["end"]))
            except (ValueError, KeyError, TypeError):
                log.error("dropping a message that is not a chunk: %r", message["Body"][:200])
                self.delete(receipt)
                continue
            count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
            deliveries.append(Delivery(chunk, receipt, count))
        return deliveries

    def _where(self, receipt: str) -> tuple[str, str]:
        if receipt.startswith(DEAD):
            return self.dead_letter_queue_url, receipt.removeprefix(DEAD)
        return self.queue_url, receipt

    def delete(self, receipt: str) -> None:
        if self.deleted_by_event_source:
            return
        url, handle = self._where(receipt)
        try:
            self.client.delete_message(QueueUrl=url, ReceiptHandle=handle)
        except Exception as error:
            if error_code(error) not in STALE:
                raise BackendError(f"deleting a chunk message: {error}") from error

    def delete_many(self, receipts: Sequence[str]) -> None:
        """Delete received messages, 10 a request (DeleteMessageBatch); stale receipts are
        ignored like `delete` ignores them."""
        if self.deleted_by_event_source:
            return
        by_queue: dict[str, list[str]] = {}
        for receipt in receipts:
            url, handle = self._where(receipt)
            by_queue.setdefault(url, []).append(handle)
        for url, handles in by_queue.items():
            for first in range(0, len(handles), SEND_BATCH):
                entries = [
                    {"Id": str(i), "ReceiptHandle": h}
                    for i, h in enumerate(handles[first : first + SEND_BATCH])
                ]
                with translated("deleting chunk messages"):
                    response = self.client.delete_message_batch(QueueUrl=url, Entries=entries)
                failed = [f for f in response.get("Failed", []) if f.get("Code") not in STALE]
                if failed:
                    raise BackendError(f"SQS did not delete {len(failed)} chunk messages")

    def extend(self, receipt: str, visibility_timeout: float) -> None:
        url, handle = self._where(receipt)
        try:
            self.client.change_message_visibility(
                QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=_seconds(visibility_timeout)
            )
        except Exception as error:
            if error_code(error) not in STALE:
                raise BackendError(f"extending a chunk message: {error}") from error


def _seconds(timeout: float) -> int:
    """SQS counts visibility in whole seconds: round up, so a message is never hidden less."""
    return max(0, min(MAX_VISIBILITY, math.ceil(timeout)))
