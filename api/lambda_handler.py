"""The API on Lambda: API Gateway HTTP API (payload v2) and Function URL events through Mangum.

Lambda's runtime imports this module once per container and calls `handler` for every request,
so the app is built here, at import. On Lambda it refuses to start without API keys (there is
no loopback to fall back to): the import raises, and Lambda reports the init error.
"""

from __future__ import annotations

from mangum import Mangum
from mangum.adapter import DEFAULT_TEXT_MIME_TYPES

from fanout.api.app import create_app
from fanout.api.keys import load_api_keys, require_keys
from fanout.settings import Settings
from fanout.wiring import on_lambda

# Bodies of these types go back as text; others are base64-encoded for API Gateway.
TEXT_MIME_TYPES = [*DEFAULT_TEXT_MIME_TYPES, "application/problem+json", "application/x-ndjson"]


def make_handler(settings: Settings, keys_required: bool | None = None) -> Mangum:
    """The Mangum handler; raises NoApiKeys if keys are required (default: on Lambda) and none
    are configured, or the configured parameter holds none."""
    keys = load_api_keys(settings)
    if on_lambda() if keys_required is None else keys_required:
        require_keys(keys)
    # The app has no startup or shutdown work, so no lifespan cycle on each cold start.
    app = create_app(settings, api_keys=keys)
    return Mangum(app, lifespan="off", text_mime_types=TEXT_MIME_TYPES)


handler = make_handler(Settings())
