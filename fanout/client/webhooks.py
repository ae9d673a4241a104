"""Checking a completion webhook on the receiving side (Standard Webhooks)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from fanout.client.errors import InvalidSignature
from fanout.schemas import JobEvent


def verify_webhook(body: bytes | str, headers: Mapping[str, str], secret: str) -> JobEvent:
    """The event, once its `webhook-signature` checks out with the job's `whsec_` secret and its
    `webhook-timestamp` is within five minutes (the spec's replay window). Deduplicate on the
    `webhook-id` header: a retried delivery repeats it. Raises InvalidSignature otherwise."""
    lowered = {key.lower(): value for key, value in headers.items()}
    try:
        Webhook(secret).verify(body, lowered)
    except WebhookVerificationError as error:
        raise InvalidSignature(str(error)) from error
    try:
        return JobEvent.model_validate_json(body)
    except ValidationError as error:
        raise InvalidSignature(f"the body is not a fanout job event: {error}") from error
