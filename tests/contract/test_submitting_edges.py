"""`Fanout.submit` and `submit_once` at their edges, on the SQLite service: an idempotent submit
whose first holder stored the job and died, or lost the store's answer, or stored nothing; the
options and webhook a stored job gets; chunks cut on whole intake batches; the backlog and the
submitted-jobs metric a submit moves; the task's measured speed read once per STATS_TTL.

Written to kill mutants `python -m bench mutation` found surviving in
`fanout/service/submitting.py` (issue 13). In tests/contract/ because the mutation run selects
this folder already (changing its selection resets every mutmut verdict).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY

from fanout.errors import IdempotencyConflict, StoreUnavailable
from fanout.intake import BATCH
from fanout.models import ChunkInput, ChunkRef, Job, JobId, NewJob, TenantId
from fanout.service import Fanout, JobRequest
from fanout.service.submission import new_job_id
from fanout.settings import Settings
from fanout.wiring import build

TENANT = TenantId("tenant-a")
HOOK = "http://127.0.0.1:9/hook"
OWN_SECRET = "whsec_c2VjcmV0LXNlY3JldA=="


def request(**fields: Any) -> JobRequest:
    return JobRequest(**{"task": "echo", "items": [1, 2, 3], "params": {}, **fields})


def render(job: Job, secret: str | None) -> bytes:
    return json.dumps({"id": job.id, "secret": secret}).encode()


@pytest.mark.parametrize(
    "webhook",
    [{}, {"webhook_url": HOOK}, {"webhook_url": HOOK, "webhook_secret": OWN_SECRET}],
    ids=["no webhook", "generated secret", "own secret"],
)
def test_a_key_whose_holder_stored_the_job_and_died_answers_with_that_job(
    service: Fanout, settings: Settings, webhook: dict[str, str]
) -> None:
    """The holder claimed the key, stored the job, and died before storing the response: once
    its lease has passed, the repeat gets that job (JobExists), with the secret made for it,
    and no secret where none was made (the client's own is never echoed)."""
    with service.take_in(request(**webhook)) as submission:
        job_id = new_job_id()
        long_ago = time.time() - settings.idempotency_lease - 60
        service.backend.idempotency.claim(
            TENANT, "key-1", submission.fingerprint(), job_id, long_ago, settings.idempotency_lease
        )
        stored, secret = service.store(TENANT, submission, job_id)
    assert (secret is not None) == (webhook == {"webhook_url": HOOK})

    answer = json.loads(service.submit_once(TENANT, request(**webhook), "key-1", render))

    assert answer == {"id": stored.id, "secret": secret}
    again = service.submit_once(TENANT, request(**webhook), "key-1", render)
    assert json.loads(again) == answer


def test_an_idempotent_submit_with_a_generated_secret_answers_with_it_every_time(
    service: Fanout,
) -> None:
    answer = json.loads(service.submit_once(TENANT, request(webhook_url=HOOK), "k", render))
    again = json.loads(service.submit_once(TENANT, request(webhook_url=HOOK), "k", render))

    assert answer == again
    assert answer["secret"] == service.backend.jobs.webhook_secret(JobId(answer["id"]))
    assert answer["secret"].startswith("whsec_")


class LosingStore:
    """The job store, but `create_job` fails: before writing (nothing stored, e.g. a full
    disk), or after (the write committed and its answer was lost)."""

    def __init__(self, jobs: Any, after: bool) -> None:
        self.jobs, self.after = jobs, after

    def create_job(self, job: NewJob, chunks: Sequence[ChunkInput]) -> list[ChunkRef]:
        if self.after:
            self.jobs.create_job(job, chunks)
        raise StoreUnavailable("the disk is full")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.jobs, name)


def failing(settings: Settings, after: bool) -> tuple[Fanout, Fanout]:
    service = build(settings)
    jobs = LosingStore(service.backend.jobs, after)
    return service, Fanout(dataclasses.replace(service.backend, jobs=jobs), settings)


def test_a_submit_that_stored_nothing_frees_its_key_for_an_immediate_retry(
    settings: Settings,
) -> None:
    service, broken = failing(settings, after=False)
    with pytest.raises(StoreUnavailable):
        broken.submit_once(TENANT, request(), "key-1", render)

    answer = json.loads(service.submit_once(TENANT, request(), "key-1", render))

    assert service.get(TENANT, JobId(answer["id"])).total == 3


def test_a_submit_that_lost_the_answer_of_its_store_keeps_its_key_so_no_second_job_is_made(
    settings: Settings,
) -> None:
    service, broken = failing(settings, after=True)
    with pytest.raises(StoreUnavailable):
        broken.submit_once(TENANT, request(), "key-1", render)

    with pytest.raises(IdempotencyConflict):
        service.submit_once(TENANT, request(), "key-1", render)
    assert len(service.backend.jobs.list_jobs(TENANT, None, None, 10).items) == 1


def test_a_stored_job_has_the_options_and_params_asked_for_or_the_defaults(
    service: Fanout, settings: Settings
) -> None:
    asked, _ = service.submit(TENANT, request(params={"salt": 1}, max_attempts=5))
    default, _ = service.submit(TENANT, request())

    assert asked.params == {"salt": 1}
    assert asked.options.max_attempts == 5
    assert default.options.max_attempts == settings.default_max_attempts
    assert default.options.max_concurrency == settings.default_max_concurrency


def test_a_job_has_a_webhook_only_with_a_webhook_url(service: Fanout) -> None:
    without, secret = service.submit(TENANT, request(webhook_secret=OWN_SECRET))
    given, none = service.submit(TENANT, request(webhook_url=HOOK, webhook_secret=OWN_SECRET))

    assert (without.webhook_url, secret) == (None, None)
    assert service.backend.jobs.webhook_secret(without.id) is None
    assert (given.webhook_url, none) == (HOOK, None), "the client's own secret is not echoed"


def test_a_job_stored_under_a_given_id_has_that_id(service: Fanout) -> None:
    job_id = new_job_id()
    job, _ = service.submit(TENANT, request(), job_id)
    assert job.id == job_id
    assert service.get(TENANT, job_id).total == 3


def test_chunks_of_a_batch_or_more_are_cut_on_whole_intake_batches(settings: Settings) -> None:
    """A chunk of whole batches is cut without re-encoding its items (Intake.chunks)."""
    service = build(settings.model_copy(update={"chunk_overhead_seconds": 100.0}))
    total = 5 * BATCH - 100

    job, _ = service.submit(TENANT, request(items=list(range(total)), max_concurrency=1))

    size = job.options.chunk_size
    assert BATCH <= size < total
    assert size % BATCH == 0


def test_a_submit_adds_its_chunks_to_the_backlog_at_once(service: Fanout) -> None:
    before = service.backlog().unstarted_chunks
    service.submit(TENANT, request(items=list(range(9)), chunk_size=3, max_concurrency=1))
    assert service.backlog().unstarted_chunks == before + 3


def test_a_submit_counts_one_job_of_its_task(service: Fanout) -> None:
    def submitted() -> float:
        return REGISTRY.get_sample_value("fanout_jobs_submitted_total", {"task": "echo"}) or 0.0

    before = submitted()
    service.submit(TENANT, request())
    assert submitted() == before + 1


class CountingStats:
    def __init__(self, stats: Any) -> None:
        self.stats, self.reads = stats, 0

    def seconds_per_item(self, task: str) -> float | None:
        self.reads += 1
        value: float | None = self.stats.seconds_per_item(task)
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stats, name)


def test_submits_read_a_task_s_measured_speed_once_per_stats_ttl(settings: Settings) -> None:
    plain = build(settings)
    stats = CountingStats(plain.backend.stats)
    service = Fanout(dataclasses.replace(plain.backend, stats=stats), settings)

    for _ in range(3):  # not measured yet: each submit looks for its first measurement
        service.submit(TENANT, request())
    assert stats.reads == 3
    stats.record_time(request().task, 1e-5, 1.0, time.time())
    for _ in range(3):
        service.submit(TENANT, request())

    assert stats.reads == 4


class StuckKeys:
    """The idempotency store, but releasing a key fails (the store went away meanwhile)."""

    def __init__(self, keys: Any) -> None:
        self.keys = keys

    def abandon(self, tenant: TenantId, key: str) -> None:
        raise StoreUnavailable("the disk is full")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.keys, name)


def test_a_key_that_cannot_be_released_raises_the_first_error_and_logs_the_key(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The client gets the store's error (a 503), not the release's; the key expires with its
    lease, and the log says which key."""
    _, broken = failing(settings, after=False)
    keys = StuckKeys(broken.backend.idempotency)
    stuck = Fanout(dataclasses.replace(broken.backend, idempotency=keys), settings)

    with pytest.raises(StoreUnavailable, match="the disk is full"):
        stuck.submit_once(TENANT, request(), "key-1", render)

    [record] = [r for r in caplog.records if r.exc_info and "idempotency key" in r.getMessage()]
    message = "could not release idempotency key 'key-1'; it expires with its lease"
    assert record.getMessage() == message
