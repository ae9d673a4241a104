"""`Fanout.result_text`: a job's outcomes as JSON Lines in bounded pieces, on the SQLite backend,
with chunk results recorded by hand so that some are missing (gaps) and pieces fall anywhere."""

from __future__ import annotations

import pytest
from msgspec import structs
from pydantic_core import from_json

from fanout import results
from fanout.models import ChunkRef, Job, JobStatus
from fanout.service import Fanout
from fanout.settings import Settings
from fanout.wiring import build
from tests.contract.support import TENANT, echoed, new_job

TOTAL = 20
SIZE = 3
RECORDED = (0, 3, 9, 18)  # chunk starts; 6, 12 and 15 have no result yet


@pytest.fixture
def service(settings: Settings) -> Fanout:
    return build(settings)


@pytest.fixture
def job(service: Fanout) -> Job:
    """20 items in chunks of 3, with max_concurrency wide enough to start every chunk."""
    new, chunks = new_job(total=TOTAL, chunk_size=SIZE, max_concurrency=TOTAL)
    service.backend.jobs.create_job(new, chunks)
    for start in RECORDED:
        chunk = ChunkRef(new.id, start, min(start + SIZE, TOTAL))
        service.backend.chunks.start_chunk(chunk, 0.0)
        service.backend.chunks.record_chunk_result(chunk, echoed(chunk))
    return service.get(TENANT, new.id)


def expected(job: Job, start: int = 0, stop: int = TOTAL) -> list[dict[str, object]]:
    recorded = {i for s in RECORDED for i in range(s, min(s + SIZE, TOTAL))}
    gap = "cancelled" if job.status.terminal else "pending"
    return [
        {"index": i, "status": "succeeded", "output": i}
        if i in recorded
        else {"index": i, "status": gap}
        for i in range(start, stop)
    ]


def read_all(service: Fanout, job: Job, start: int, max_lines: int, max_bytes: int) -> list[bytes]:
    """Every piece from `start` to the end, as an export reads them."""
    pieces: list[bytes] = []
    position = start
    for _ in range(TOTAL + 1):
        if position >= job.total:
            return pieces
        text, after = service.result_text(job, position, max_lines, max_bytes)
        assert after > position, "every piece moves on"
        assert text.endswith(b"\n") and text.count(b"\n") == after - position
        pieces.append(text)
        position = after
    raise AssertionError("the pieces never reached the end")


def parsed(pieces: list[bytes]) -> list[dict[str, object]]:
    return [from_json(line) for line in b"".join(pieces).splitlines()]


@pytest.mark.parametrize("start", [0, 1, 5, 7, 17, 19])
@pytest.mark.parametrize("max_bytes", [1, 60, 200, 10_000])
def test_pieces_from_any_start_join_into_every_outcome_in_input_order(
    service: Fanout, job: Job, start: int, max_bytes: int
) -> None:
    pieces = read_all(service, job, start, TOTAL, max_bytes)

    assert parsed(pieces) == expected(job, start)


def test_a_piece_stops_at_the_first_block_past_its_byte_budget(service: Fanout, job: Job) -> None:
    text, after = service.result_text(job, 0, TOTAL, 1)

    assert after == SIZE  # one whole block, however small the budget
    assert parsed([text]) == expected(job, 0, SIZE)


@pytest.mark.parametrize(("start", "lines"), [(0, 5), (4, 3), (10, 10), (19, 4)])
def test_a_page_has_exactly_its_line_limit_wherever_it_cuts_a_chunk(
    service: Fanout, job: Job, start: int, lines: int
) -> None:
    text, after = service.result_text(job, start, lines, 1 << 40)

    assert after == min(TOTAL, start + lines)
    assert parsed([text]) == expected(job, start, after)


def test_items_of_an_ended_job_without_outcome_read_cancelled(service: Fanout, job: Job) -> None:
    ended = structs.replace(job, status=JobStatus.CANCELLED)

    assert parsed(read_all(service, ended, 0, TOTAL, 50)) == expected(ended)


def test_reading_at_the_end_gives_nothing(service: Fanout, job: Job) -> None:
    assert service.result_text(job, TOTAL, TOTAL, 1000) == (b"", TOTAL)


def test_a_long_run_of_items_without_outcome_comes_in_bounded_pieces(service: Fanout) -> None:
    total = 2 * results.MAX_GAP_LINES + 5
    new, chunks = new_job(total=total, chunk_size=total)
    service.backend.jobs.create_job(new, chunks)
    job = service.get(TENANT, new.id)

    text, after = service.result_text(job, 0, total, 1 << 40)

    assert after == results.MAX_GAP_LINES
    assert parsed([text])[-1] == {"index": after - 1, "status": "pending"}
