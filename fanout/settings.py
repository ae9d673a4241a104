"""Configuration from `FANOUT_*` environment variables, the same on Lambda and on a laptop."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]


def _networks(value: object) -> object:
    """CIDRs one by one, so a bad one is named once (not once per IP version it is not)."""
    listed = _csv(value)
    if not isinstance(listed, list):
        return listed
    networks = []
    for item in listed:
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError as error:
            raise ValueError(f"not a CIDR network: {error}") from None
    return networks


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FANOUT_", extra="ignore")

    # Which adapters to wire: the embedded SQLite file, or DynamoDB + SQS + S3.
    backend: Literal["sqlite", "aws"] = "sqlite"
    data_dir: Path = Path(".fanout")
    host: str = "127.0.0.1"
    # 0: a free port the system picks; `fanout serve` prints it (and writes it to --port-file).
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=0)
    tasks: Annotated[list[str], NoDecode] = []
    # Task modules are looked for here first, then among the installed packages (as uvicorn's
    # --app-dir): `FANOUT_TASKS=mytasks fanout serve` finds ./mytasks.py.
    app_dir: Path = Path(".")
    # Each key is a tenant: "key1:tenant-a,key2:tenant-b" (a key alone is its own tenant).
    api_keys: Annotated[list[str], NoDecode] = []
    # `POST /uploads`: how long the URL it returns admits the file's PUT.
    upload_url_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    # API keys kept in an SSM Parameter Store SecureString (same format) instead, read again
    # after `api_keys_ttl` seconds: the AWS deployment's way (fanout/api/keys.py).
    api_keys_parameter: str | None = None
    api_keys_ttl: float = Field(default=60.0, ge=0)
    webhook_allow_networks: Annotated[
        list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode
    ] = []

    max_body_bytes: int = 64 * 1024 * 1024
    # Input files (`items_url`) on the embedded backend: only files under this directory are
    # read (default: <data_dir>/inputs).
    input_dir: Path | None = None
    max_items: int = 1_000_000
    # Streamed items (an NDJSON or CSV body, an `items_url` file): bytes in all, and bytes a
    # line (one item), each enforced while reading.
    max_input_bytes: int = 1024 * 1024 * 1024
    max_item_bytes: int = 1024 * 1024
    # Chunking, as Step Functions' ItemBatcher: by count and by bytes. Without a job's own
    # `chunk_size`, its size follows the task's measured time per item (fanout.chunking): a
    # chunk's fixed cost besides its items (None: the backend's estimate), and the longest a
    # chunk's items should run.
    max_chunk_items: int = 10_000
    max_chunk_bytes: int = 256 * 1024
    chunk_overhead_seconds: float | None = Field(default=None, gt=0)
    max_chunk_seconds: float = Field(default=10.0, gt=0)
    default_max_concurrency: int = 16
    default_max_attempts: int = 3
    async_concurrency: int = 100

    visibility_timeout: float = 60.0
    max_receive_count: int = 3
    chunk_timeout: float = 900.0
    reconcile_interval: float = 5.0
    # A job idle this long has the chunks its window released, and nobody started, sent again
    # (a message lost between the store and the queue); a running chunk is never re-sent.
    stale_after: float = 10.0
    poll_interval: float = 0.02

    # Crash recovery: each worker process says it is alive every `owner_heartbeat` seconds; one
    # silent for `owner_dead_after` is dead, and the chunks it held are handed back at once.
    owner_heartbeat: float = 0.5
    owner_dead_after: float = 3.0
    # An idempotency key whose request has held it this long without finishing is taken over.
    idempotency_lease: float = 10.0
    # Seconds a client is asked to wait (Retry-After) while the store cannot write; at least 1,
    # since 0 tells clients to retry at once, which is the stampede a 503 is meant to prevent.
    unavailable_retry_after: int = Field(default=5, ge=1)

    webhook_timeout: float = 10.0
    webhook_max_attempts: int = 8
    webhook_backoff_base: float = 1.0
    webhook_backoff_max: float = 600.0
    retry_backoff_base: float = 0.1
    retry_backoff_max: float = 30.0

    # The AWS backend (AWS_ENDPOINT_URL, read by boto3 itself, points it at an emulator). Queue
    # URLs left unset are looked up by name: `<table>-chunks`, `<table>-dead`, `<table>-notify`.
    table: str = "fanout"
    chunk_queue_url: str | None = None
    dead_letter_queue_url: str | None = None
    notify_queue_url: str | None = None
    bucket: str | None = None
    # Ended jobs, their chunks and results expire this long after they end (DynamoDB: TTL; SQLite:
    # purged every `purge_interval` seconds, the file's freed space given back). 0 keeps them.
    retention_days: float = Field(default=7.0, ge=0)
    purge_interval: float = Field(default=10.0, gt=0)
    # SQS long polling for the `--backend aws` pollers (at most 20 s, an SQS limit).
    receive_wait_seconds: int = Field(default=1, ge=0, le=20)

    # Live progress, `GET /jobs/{id}/events`: how often a watched job is read (once for all its
    # streams), how long a stream lasts before its client reopens it with Last-Event-ID (behind
    # a buffering proxy or API Gateway, set it below the proxy's timeout), streams per address.
    stream_poll_interval: float = Field(default=0.25, gt=0)
    stream_max_seconds: float = Field(default=300.0, gt=0)
    max_streams_per_peer: int = Field(default=32, ge=1)

    # What `fanout serve` and `fanout worker` log, to stderr: text, or one JSON object a line.
    log_level: LogLevel = "info"
    log_format: LogFormat = "text"
    # uvicorn's line per request; off by default (it costs about a third of a small route's
    # throughput, DESIGN.md).
    access_log: bool = False
    # `fanout serve`'s API process yields the CPU to its workers and its background process
    # (webhooks) by this `nice` increment when they compete for it: with every core busy,
    # finishing the jobs already accepted comes before accepting more, so the backlog, and the
    # time from POST to webhook, stay bounded. 3 gives the API 34 % of a core shared with one
    # busy worker (50 % at 0). Under `python -m bench load`, at 0: p99 POST to webhook 1.4-2.1 s
    # (the backlog of the load's first seconds drained for ~8 s); at 3: 0.57-0.87 s, accepting
    # ~10 % fewer jobs a second (bench/README.md, `load`).
    api_nice: int = Field(default=3, ge=0, le=19)

    # Abuse resistance (issue 8). Slow clients: a request's head must arrive within
    # header_timeout s, its body at min_body_rate bytes/s after that grace (else 408). Browsers:
    # in keyless mode only loopback names and allowed_hosts are served (DNS rebinding);
    # cors_origins may call the API from a page (CORS, and trusted by the cross-origin check).
    # Backpressure: POST /jobs answers 429 while this many chunks wait unstarted, or this many
    # webhooks undelivered.
    header_timeout: float = Field(default=10.0, gt=0)
    min_body_rate: float = Field(default=1024.0, ge=0)
    allowed_hosts: Annotated[list[str], NoDecode] = []
    cors_origins: Annotated[list[str], NoDecode] = []
    max_unstarted_chunks: int = Field(default=100_000, ge=1)
    max_undelivered_webhooks: int = Field(default=10_000, ge=1)
    backpressure_retry_after: int = Field(default=5, ge=1)

    _split_csv = field_validator(
        "tasks", "api_keys", "allowed_hosts", "cors_origins", mode="before"
    )(_csv)
    _parse_networks = field_validator("webhook_allow_networks", mode="before")(_networks)

    @property
    def database(self) -> Path:
        return self.data_dir / "fanout.db"

    @property
    def inputs(self) -> Path:
        return self.input_dir or self.data_dir / "inputs"
