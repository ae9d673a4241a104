"""Items read from streams (JSON, JSON Lines, CSV) and taken in: validated, spooled, chunked."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_core import from_json

from fanout import task, tasks
from fanout.errors import InvalidJob
from fanout.intake import BATCH, MAX_LISTED_ERRORS, Intake
from fanout.readers import (
    Format,
    TooLarge,
    Unreadable,
    buffered,
    format_of,
    limited,
    read_items,
)

LINE = 1000


class Row(BaseModel):
    name: str
    count: int


@task(name="test_intake_row")
def row(item: Row) -> int:
    return item.count


@task(name="test_intake_int")
def number(item: int) -> int:
    return item


def read(data: bytes, format: Format, max_line: int = LINE) -> list[Any]:
    return list(read_items(limited(io.BytesIO(data), 1 << 30), format, max_line))


def test_json_lines_are_read_one_value_a_line_skipping_blank_lines() -> None:
    data = b'{"a": 1}\n\n[1, 2]\n"text"\n  \n3\r\n4'

    assert read(data, "jsonl") == [{"a": 1}, [1, 2], "text", 3, 4]


def test_a_bad_json_line_is_named_by_its_number() -> None:
    with pytest.raises(Unreadable) as raised:
        read(b"1\n2\n{oops\n4\n", "jsonl")

    assert raised.value.line == 3
    assert "not JSON" in raised.value.message


def test_a_line_over_the_limit_is_refused_without_reading_it_whole() -> None:
    with pytest.raises(Unreadable) as raised:
        read(b"1\n" + b"9" * 5000 + b"\n", "jsonl", max_line=100)

    assert raised.value.line == 2
    assert "longer than 100 bytes" in raised.value.message


def test_csv_rows_are_objects_of_the_header_s_names() -> None:
    data = '\ufeffname,count\nalpha,1\n"b, quoted",2\n'.encode()

    assert read(data, "csv") == [
        {"name": "alpha", "count": "1"},
        {"name": "b, quoted", "count": "2"},
    ]
    assert read(b"", "csv") == []


def test_a_csv_row_with_the_wrong_number_of_fields_is_named_by_its_line() -> None:
    with pytest.raises(Unreadable) as raised:
        read(b"name,count\nalpha,1\nbeta\n", "csv")

    assert raised.value.line == 3
    assert "1 fields, the header has 2" in raised.value.message


def test_csv_that_is_not_utf8_is_unreadable() -> None:
    with pytest.raises(Unreadable):
        read(b"name\n\xff\xfe\n", "csv")


def test_a_json_array_is_read_item_by_item() -> None:
    assert read(b'  [1, {"a": [2.5]}, "x", null]', "json") == [1, {"a": [2.5]}, "x", None]
    assert read(b"[]", "json") == []


@pytest.mark.parametrize("data", [b'{"items": [1]}', b"", b"1", b"[1, 2", b"[1,, 2]"])
def test_anything_but_one_json_array_is_unreadable(data: bytes) -> None:
    with pytest.raises(Unreadable):
        read(data, "json")


def test_file_names_say_their_format() -> None:
    assert [format_of(n) for n in ("a.json", "b.JSONL", "c.ndjson", "d.csv", "e.txt")] == [
        "json",
        "jsonl",
        "jsonl",
        "csv",
        None,
    ]


def test_a_stream_over_its_byte_limit_stops_being_read() -> None:
    parts = (b"1\n" * 100 for _ in range(1000))

    with pytest.raises(TooLarge):
        list(read_items(buffered(parts, 10_000), "jsonl", LINE))


def take(task_name: str, items: Any) -> Intake:
    definition = tasks.get_task(task_name)
    assert definition is not None
    intake = Intake(definition, max_items=100_000)
    try:
        intake.take(items)
    except BaseException:
        intake.close()
        raise
    return intake


def chunk_items(intake: Intake, size: int, max_bytes: int = 1 << 20) -> list[list[Any]]:
    return [from_json(chunk.items_json) for chunk in intake.chunks(size, max_bytes)]


def test_items_come_out_in_chunks_of_the_size_asked_for_in_input_order() -> None:
    with take("test_intake_int", iter(range(3000))) as intake:
        chunks = list(intake.chunks(700, 1 << 20))

        assert intake.total == 3000
        assert [(c.start, c.end) for c in chunks] == [
            (s, min(s + 700, 3000)) for s in range(0, 3000, 700)
        ]
        assert [i for c in chunks for i in from_json(c.items_json)] == list(range(3000))
        assert chunk_items(intake, 1)[2999] == [2999]


def test_items_are_stored_as_the_task_s_input_type_makes_them() -> None:
    with take("test_intake_row", [{"name": "a", "count": "7"}]) as intake:
        assert chunk_items(intake, 10) == [[{"name": "a", "count": 7}]]


def test_a_chunk_over_the_byte_limit_is_halved_until_it_fits() -> None:
    items = ["x" * 10] * 8 + ["y" * 100]
    with take("echo", items) as intake:
        chunks = list(intake.chunks(100, 60))

    assert [c.end - c.start for c in chunks] == [4, 2, 1, 1, 1]
    assert all(len(c.items_json) <= 60 for c in chunks[:-1])  # the last: one item, too large


def test_bad_items_are_named_by_their_index_across_batches() -> None:
    items: Iterator[Any] = (i if i not in (5, BATCH + 3) else "five" for i in range(3 * BATCH))

    with pytest.raises(InvalidJob) as raised:
        take("test_intake_int", items)

    assert [(e["index"], e["field"]) for e in raised.value.errors] == [
        (5, "items[5]"),
        (BATCH + 3, f"items[{BATCH + 3}]"),
    ]


def test_reading_stops_after_the_errors_it_lists() -> None:
    consumed = []

    def items() -> Iterator[str]:
        for i in range(100 * BATCH):
            consumed.append(i)
            yield "not a number"

    with pytest.raises(InvalidJob) as raised:
        take("test_intake_int", items())

    assert len(raised.value.errors) == MAX_LISTED_ERRORS
    assert len(consumed) <= BATCH


def test_more_items_than_allowed_are_refused_as_soon_as_they_come() -> None:
    definition = tasks.get_task("echo")
    assert definition is not None
    consumed = []

    def items() -> Iterator[int]:
        for i in range(10 * BATCH):
            consumed.append(i)
            yield i

    with Intake(definition, max_items=BATCH + 1) as intake, pytest.raises(InvalidJob) as raised:
        intake.take(items())

    assert raised.value.errors == [{"field": "items", "message": f"at most {BATCH + 1} items"}]
    assert len(consumed) <= 2 * BATCH


def test_the_digest_depends_on_the_items_values_not_their_spelling() -> None:
    with (
        take("test_intake_int", [1, 2, 3]) as a,
        take("test_intake_int", ["1", 2, 3]) as b,
        take("test_intake_int", [1, 2, 4]) as c,
    ):
        assert a.digest() == b.digest() != c.digest()


def test_a_large_intake_spills_to_disk_and_reads_back_whole() -> None:
    items = [{"name": f"row {i}", "count": i} for i in range(50_000)]
    definition = tasks.get_task("test_intake_row")
    assert definition is not None
    with Intake(definition, max_items=50_000, spool_memory=64 * 1024) as intake:
        intake.take(iter(items))

        assert intake.on_disk
        assert intake.total == 50_000
        assert [i for chunk in chunk_items(intake, 4096) for i in chunk] == items


tasks.load([])  # the built-in `echo`


def test_chunks_of_whole_batches_are_joined_with_the_same_items_and_limits() -> None:
    with take("test_intake_int", iter(range(5 * BATCH + 7))) as intake:
        joined = list(intake.chunks(2 * BATCH, 1 << 20))
        halved = list(intake.chunks(2 * BATCH, 8 * BATCH))

    assert [(c.start, c.end) for c in joined] == [
        (0, 2 * BATCH),
        (2 * BATCH, 4 * BATCH),
        (4 * BATCH, 5 * BATCH + 7),
    ]
    assert [i for c in joined for i in from_json(c.items_json)] == list(range(5 * BATCH + 7))
    assert all(len(c.items_json) <= 8 * BATCH for c in halved)
    assert [i for c in halved for i in from_json(c.items_json)] == list(range(5 * BATCH + 7))
