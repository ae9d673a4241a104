"""The API on Lambda: API Gateway HTTP API (payload v2) and Function URL events through Mangum.

Lambda's runtime imports this module once per container and calls `handler` for every request,
so the app is built here, at import.
"""

from __future__ import annotations

from mangum import Mangum
from mangum.adapter import DEFAULT_TEXT_MIME_TYPES

from fanout.api.app import create_app
from fanout.settings import Settings

# Bodies of these types go back as text; others are base64-encoded for API Gateway.
TEXT_MIME_TYPES = [*DEFAULT_TEXT_MIME_TYPES, "application/problem+json", "application/x-ndjson"]


def make_handler(settings: Settings) -> Mangum:
    # The app has no startup or shutdown work, so no lifespan cycle on each cold start.
    return Mangum(create_app(settings), lifespan="off", text_mime_types=TEXT_MIME_TYPES)


handler = make_handler(Settings())
