"""The progress bar of `fanout watch` and `fanout submit --wait`, and the line that ends it."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from fanout.schemas import JobPublic

STYLES = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}


class RateColumn(ProgressColumn):
    """Items per second, from rich's moving estimate over the last updates."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} items/s" if speed else "- items/s", style="cyan")


def bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TextColumn("[red]{task.fields[failed]} failed"),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=console,
        speed_estimate_period=10.0,
    )


def follow(updates: Iterable[JobPublic], console: Console) -> JobPublic:
    """Show each update on one bar until the job ends; print the outcome; return the job."""
    job: JobPublic | None = None
    with bar(console) as progress:
        task = progress.add_task("", total=None, failed=0)
        for job in updates:
            counts = job.counts
            progress.update(
                task,
                description=f"{job.id} {job.status}",
                total=counts.total,
                completed=counts.succeeded + counts.failed,
                failed=counts.failed,
            )
    assert job is not None, "a watch ends with the ended job"
    console.print(outcome(job))
    return job


def outcome(job: JobPublic) -> Text:
    """One line: the job's status and counts (its error, if it ended with one)."""
    counts = job.counts
    line = (
        f"job {job.id} {job.status}: {counts.succeeded:,} succeeded, {counts.failed:,} failed"
        + (f", {counts.running:,} running" if counts.running else "")
        + (f", {counts.cancelled:,} cancelled" if counts.cancelled else "")
        + f" of {counts.total:,}"
        + (f" ({job.error})" if job.error else "")
    )
    return Text(line, style=STYLES.get(job.status, ""))
