"""A job's items on their way in: validated against the task's input type as they arrive and
kept in encoded form, then cut into chunks once their number is known.

Items come from anywhere (a JSON body's list, an NDJSON body, an input file) as an iterable and
are taken in batches: each batch is validated and written to a spool as the task's JSON, in
memory up to SPOOL_MEMORY and on disk past it. Nothing reaches the store until every item is in
and valid, so a rejected submission, even one rejected mid-stream, stores nothing; and the
items are never held whole as Python objects.
"""

from __future__ import annotations

import hashlib
import itertools
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, from_json, to_json

from fanout.errors import InvalidJob
from fanout.models import ChunkInput
from fanout.tasks import TaskDef

BATCH = 1024
SPOOL_MEMORY = 4 * 1024 * 1024
MAX_LISTED_ERRORS = 50
# pydantic_core writes JSON at most 255 levels deep and reads it at most 200 (its recursion
# limits), and every step after submit reads the items back (chunking, the worker): an item
# nested too deeply to be read back is refused by index, never accepted to fail later.
TOO_DEEP = "nested too deeply: arrays and objects at most about 200 levels deep"


class Intake:
    """The validated items of one submission, spooled. Use as a context manager: closing it
    drops the spool."""

    def __init__(self, task: TaskDef, max_items: int, spool_memory: int = SPOOL_MEMORY) -> None:
        self.task = task
        self.max_items = max_items
        self.spool_memory = spool_memory
        self.total = 0
        self.errors: list[dict[str, object]] = []
        # Closed by close(): the spool outlives this call, as long as the submission.
        self._spool = tempfile.SpooledTemporaryFile(max_size=spool_memory)  # noqa: SIM115
        self._blocks: list[tuple[int, int]] = []  # each batch's items and encoded length

    def __enter__(self) -> Intake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._spool.close()

    @property
    def on_disk(self) -> bool:
        """Whether the spool outgrew its memory and moved to a temporary file."""
        return (
            sum(length for _, length in self._blocks) > self.spool_memory
        )  # when SpooledTemporaryFile rolls over

    def take(self, items: Iterable[Any]) -> None:
        """Validate and spool every item. Raises InvalidJob naming the bad item indices (at
        most MAX_LISTED_ERRORS: reading stops there), or at the first item past `max_items`."""
        source = iter(items)
        while batch := list(itertools.islice(source, BATCH)):
            if self.total + len(batch) > self.max_items:
                raise InvalidJob(
                    "Too many items",
                    [{"field": "items", "message": f"at most {self.max_items} items"}],
                )
            self._add(batch)
            if len(self.errors) >= MAX_LISTED_ERRORS:
                break
        if self.errors:
            raise InvalidJob("Items do not match the task's input type", self.errors)

    def _add(self, batch: list[Any]) -> None:
        adapter = self.task.items_adapter
        try:
            valid = adapter.validate_python(batch)
        except ValidationError as error:
            room = MAX_LISTED_ERRORS - len(self.errors)
            self.errors += item_errors(error, self.total)[:room]
        else:
            if not self.errors:  # once one item is bad, the rest are only checked
                self._spool_batch(valid)
        self.total += len(batch)

    def _spool_batch(self, valid: list[Any]) -> None:
        try:
            encoded = self.task.items_adapter.dump_json(valid)
        except PydanticSerializationError:
            deep = [i for i, item in enumerate(valid) if not self._writable(item)]
            room = MAX_LISTED_ERRORS - len(self.errors)
            self.errors += [_too_deep(self.total + i) for i in deep or [0]][:room]
            return
        self._spool.write(encoded)
        self._blocks.append((len(valid), len(encoded)))

    def _writable(self, item: Any) -> bool:
        try:
            self.task.items_adapter.dump_json([item])
        except PydanticSerializationError:
            return False
        return True

    def digest(self) -> str:
        """SHA-256 of the validated items as the task's JSON: the same items, however they
        were spelled or sent, have the same digest."""
        hashed = hashlib.sha256()
        self._spool.seek(0)
        for _, length in self._blocks:
            hashed.update(self._spool.read(length))
        return hashed.hexdigest()

    def chunks(self, size: int, max_bytes: int) -> Iterator[ChunkInput]:
        """The items in input order, `size` a chunk, a chunk over `max_bytes` halved until it
        fits or holds one item (Step Functions' ItemBatcher: by count and by bytes). A size
        that is a whole number of batches is cut without parsing a byte: the batches' JSON
        arrays are joined."""
        self._spool.seek(0)
        whole_batches = all(count == BATCH for count, _ in self._blocks[:-1])
        if size % BATCH == 0 and whole_batches:
            return self._joined(size // BATCH, max_bytes)
        return self._parsed(size, max_bytes)

    def _joined(self, batches: int, max_bytes: int) -> Iterator[ChunkInput]:
        start = 0
        for first in range(0, len(self._blocks), batches):
            group = self._blocks[first : first + batches]
            arrays = [self._spool.read(length) for _, length in group]
            encoded = b"[" + b",".join(array[1:-1] for array in arrays) + b"]"
            count = sum(n for n, _ in group)
            if len(encoded) <= max_bytes or count == 1:
                yield ChunkInput(start, start + count, encoded)
            else:
                yield from _by_bytes(start, _read(encoded, start), max_bytes)
            start += count

    def _parsed(self, size: int, max_bytes: int) -> Iterator[ChunkInput]:
        pending: list[Any] = []
        start = 0
        for _, length in self._blocks:
            pending += _read(self._spool.read(length), start + len(pending))
            taken = 0
            while len(pending) - taken >= size:
                yield from _by_bytes(start, pending[taken : taken + size], max_bytes)
                taken += size
                start += size
            del pending[:taken]  # once a batch: a chunk of one item must not cost a shift each
        if pending:
            yield from _by_bytes(start, pending, max_bytes)


def _read(encoded: bytes, start: int) -> list[Any]:
    """A spooled array of items, the first at index `start`. Raises InvalidJob naming the
    items nested too deeply to be read back (written, but past the reading limit)."""
    try:
        items: list[Any] = from_json(encoded)
    except ValueError as error:
        if "recursion limit" not in str(error):
            raise
        found = _deeply_read(encoded)
        deep = [start + i for i, item in enumerate(found) if not readable(item)]
        raise InvalidJob(
            "Items nested too deeply", [_too_deep(i) for i in deep[:MAX_LISTED_ERRORS]]
        ) from error
    return items


def _deeply_read(encoded: bytes) -> list[Any]:
    """Items too deep for pydantic_core to read, read by msgspec (about 1000 levels deep), only
    to say which they are; imported here, off the usual path."""
    import msgspec

    items: list[Any] = msgspec.json.decode(encoded)
    return items


def readable(item: Any) -> bool:
    """Whether the item, as JSON in a chunk's array, can be read back by pydantic_core."""
    try:
        from_json(to_json([item]))
    except ValueError:
        return False
    return True


def _too_deep(index: int) -> dict[str, object]:
    return {"index": index, "field": f"items[{index}]", "message": TOO_DEEP}


def _by_bytes(start: int, items: list[Any], max_bytes: int) -> Iterator[ChunkInput]:
    encoded = to_json(items)
    if len(encoded) <= max_bytes or len(items) == 1:
        yield ChunkInput(start, start + len(items), encoded)
        return
    middle = len(items) // 2
    yield from _by_bytes(start, items[:middle], max_bytes)
    yield from _by_bytes(start + middle, items[middle:], max_bytes)


def item_errors(error: ValidationError, offset: int = 0) -> list[dict[str, object]]:
    """Pydantic's errors over a batch as `{"index", "field", "message"}`, indices counted from
    the batch's first item at `offset`."""
    listed: list[dict[str, object]] = []
    for detail in error.errors(include_url=False)[:MAX_LISTED_ERRORS]:
        loc = list(detail["loc"])
        if loc and isinstance(loc[0], int):
            loc[0] += offset
        listed.append(
            {
                "index": loc[0] if loc else None,
                "field": "items"
                + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc),
                "message": detail["msg"],
            }
        )
    return listed
