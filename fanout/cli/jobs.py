"""The client commands: `fanout submit`, `jobs`, `status`, `watch`, `results`, `cancel`,
`redrive`, talking to a running service over HTTP (`fanout.client`).

Exit status: 0 when the job (or request) succeeded, 1 when a job waited for ended failed or
cancelled, 2 when the request was refused (the problem is printed) or the service unreachable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from rich.console import Console
from rich.table import Table

from fanout.cli.app import app, console
from fanout.cli.progress import follow, outcome
from fanout.client import APIError, Client, ItemsFileError
from fanout.schemas import JobPublic

T = TypeVar("T")
PANEL = "Jobs (a client of a running service)"
stdout = Console()  # tables and outcomes; progress and errors go to stderr (`console`)
Url = Annotated[str | None, typer.Option("--url", envvar="FANOUT_URL", help="The service's URL.")]
ApiKey = Annotated[
    str | None,
    typer.Option("--api-key", envvar="FANOUT_API_KEY", help="An API key.", show_default=False),
]
JobId = Annotated[str, typer.Argument(help="The job's id.", show_default=False)]
AsJson = Annotated[bool, typer.Option("--json", help="Print the job as JSON.")]
Wait = Annotated[bool, typer.Option("--wait", "-w", help="Show progress until the job ends.")]


@contextmanager
def _client(url: str | None, api_key: str | None) -> Iterator[Client]:
    """A client whose errors end the command with one clear line (exit status 2)."""
    try:
        with Client(url, api_key) as client:
            yield client
    except APIError as error:
        console.print(f"[red]error:[/] {error}")
        for item in error.errors:
            where = item.get("field") or item.get("index")
            console.print(f"  {where}: {item.get('message', '')}")
        raise typer.Exit(2) from None
    except ItemsFileError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    except httpx.TransportError as error:
        console.print(f"[red]error:[/] cannot reach the service at {url or '$FANOUT_URL'}: {error}")
        raise typer.Exit(2) from None


def _show(job: JobPublic, as_json: bool) -> None:
    if as_json:
        typer.echo(job.model_dump_json())


def _end(job: JobPublic) -> None:
    if job.status != "succeeded":
        raise typer.Exit(1)


def _watch(client: Client, job_id: str, as_json: bool) -> None:
    job = follow(client.watch(job_id), console)
    _show(job, as_json)
    _end(job)


def _param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="--param")
    try:
        return key, json.loads(value)  # numbers, booleans, lists...
    except json.JSONDecodeError:
        return key, value  # ...and anything else as a string


@app.command(rich_help_panel=PANEL)
def submit(
    task: Annotated[str, typer.Argument(help="A registered task's name.", show_default=False)],
    items: Annotated[
        Path,
        typer.Argument(help="A .json array, .jsonl or .csv file of items; - reads stdin."),
    ],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE for params (repeat).")
    ] = None,
    items_format: Annotated[
        str | None, typer.Option("--format", help="json, jsonl or csv (default: by suffix).")
    ] = None,
    webhook: Annotated[str | None, typer.Option(help="URL to POST when the job ends.")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Items per chunk.")] = None,
    max_concurrency: Annotated[int | None, typer.Option(help="Chunks in flight.")] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts per item.")] = None,
    reduce: Annotated[str | None, typer.Option(help="A registered reducer.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Idempotency-Key.")] = None,
    wait: Wait = False,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Submit a job; print its id (or, with --json, the job). With --wait, show its progress
    and exit 1 unless it succeeded."""
    if items_format not in (None, "json", "jsonl", "csv"):
        raise typer.BadParameter("must be json, jsonl or csv", param_hint="--format")
    params = dict(_param(p) for p in param or [])
    with _client(url, api_key) as client:
        job = client.submit(
            task,
            items_file=items,
            items_format=items_format,  # type: ignore[arg-type]  # checked above
            params=params,
            webhook=webhook,
            idempotency_key=idempotency_key,
            chunk_size=chunk_size,
            max_concurrency=max_concurrency,
            max_attempts=max_attempts,
            reduce=reduce,
        )
        if job.webhook is not None and job.webhook.secret is not None:
            console.print(f"webhook secret (shown only now): {job.webhook.secret}")
        if not as_json:
            typer.echo(job.id)
        if wait:
            _watch(client, job.id, as_json)
        else:
            _show(job, as_json)


@app.command(rich_help_panel=PANEL)
def jobs(
    status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """List your jobs, newest first."""
    with _client(url, api_key) as client:
        page = client.list(status, limit=limit)
    if as_json:
        typer.echo(page.model_dump_json())
        return
    table = Table("task", "status", "done", "failed", "created", box=None)
    table.add_column("id", no_wrap=True)
    for job in page.items:
        counts = job.counts
        done = counts.succeeded + counts.failed
        created = job.created_at[5:16].replace("T", " ")  # MM-DD HH:MM, UTC
        table.add_row(
            job.task, job.status, f"{done}/{counts.total}", str(counts.failed), created, job.id
        )
    stdout.print(table)


@app.command(rich_help_panel=PANEL)
def status(job_id: JobId, as_json: AsJson = False, url: Url = None, api_key: ApiKey = None) -> None:
    """Show a job: status, counts, timing, error."""
    with _client(url, api_key) as client:
        job = client.get(job_id)
    if as_json:
        _show(job, True)
        return
    stdout.print(outcome(job))


@app.command(rich_help_panel=PANEL)
def watch(job_id: JobId, as_json: AsJson = False, url: Url = None, api_key: ApiKey = None) -> None:
    """Show a job's progress until it ends; exit 1 unless it succeeded."""
    with _client(url, api_key) as client:
        _watch(client, job_id, as_json)


@app.command(rich_help_panel=PANEL)
def results(
    job_id: JobId,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Write every item's outcome as JSON Lines, in input order."""
    with _client(url, api_key) as client:
        if output is None:
            client.download_results(job_id, sys.stdout.buffer)
            return
        with output.open("wb") as out:
            written = client.download_results(job_id, out)
        console.print(f"{written:,} bytes written to {output}")


def _change(
    action: Callable[[Client], JobPublic],
    wait: bool,
    as_json: bool,
    url: str | None,
    key: str | None,
) -> None:
    with _client(url, key) as client:
        job = action(client)
        if wait:
            _watch(client, job.id, as_json)
            return
        _show(job, as_json)
        if not as_json:
            stdout.print(outcome(job))


@app.command(rich_help_panel=PANEL)
def cancel(job_id: JobId, as_json: AsJson = False, url: Url = None, api_key: ApiKey = None) -> None:
    """Cancel a job: items without an outcome end cancelled."""
    _change(lambda client: client.cancel(job_id), False, as_json, url, api_key)


@app.command(rich_help_panel=PANEL)
def redrive(
    job_id: JobId,
    wait: Wait = False,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Run a job's failed (and never run) items again; with --wait, show its progress."""
    _change(lambda client: client.redrive(job_id), wait, as_json, url, api_key)
