"""A job's outcome lines in input order, read in bounded pieces of whole JSON Lines.

The store keeps one block of newline-joined lines per recorded chunk, so a piece is mostly whole
blocks copied as they are: no line is parsed or re-encoded. Items without an outcome yet (their
chunk not recorded) read `pending`, or `cancelled` once the job has ended.

Each call reads the store afresh from its `start`, holding nothing open between calls, so an
export of any size is a series of short reads, each on whichever thread makes it.
"""

from __future__ import annotations

from fanout.models import Job
from fanout.ports import JobStore

# A gap line is ~32 bytes; at most this many are made per call, whatever max_bytes allows.
MAX_GAP_LINES = 16_384


class _Piece:
    """The lines gathered so far by one call, from `position` on."""

    def __init__(self, start: int, stop: int, max_bytes: int, terminal: bool) -> None:
        self.parts: list[bytes] = []
        self.size, self.position, self.stop, self.max_bytes = 0, start, stop, max_bytes
        self.status = b"cancelled" if terminal else b"pending"

    @property
    def full(self) -> bool:
        return self.position >= self.stop or self.size >= self.max_bytes

    def _append(self, text: bytes, position: int) -> None:
        self.parts.append(text)
        self.size += len(text)
        self.position = position

    def gap_to(self, first: int) -> bool:
        """Lines for the items before `first` that have no outcome; False if the call must end
        before reaching `first` (the piece is full, or the gap was more than one call makes)."""
        end = min(first, self.stop, self.position + MAX_GAP_LINES)
        if end > self.position:
            status, lines = self.status, range(self.position, end)
            self._append(
                b"".join(b'{"index":%d,"status":"%b"}\n' % (i, status) for i in lines), end
            )
        return self.position >= min(first, self.stop) and not self.full

    def block(self, first: int, lines: bytes) -> None:
        """A recorded chunk's lines from `position` on (only the first block can start before it,
        only the last end after `stop`)."""
        end = first + lines.count(b"\n") + 1
        if first < self.position or end > self.stop:
            lines = b"\n".join(lines.split(b"\n")[self.position - first : self.stop - first])
            end = min(end, self.stop)
        self._append(lines + b"\n", end)


def outcome_text(
    jobs: JobStore, job: Job, start: int, max_lines: int, max_bytes: int
) -> tuple[bytes, int]:
    """JSON Lines of the outcomes of items `start` onwards, each line ending in a newline: at
    most `max_lines` lines, and no more blocks once `max_bytes` is reached (a block is never
    cut, so a piece may pass it by one block). Returns the text and the index after its last
    line; that index equals `start` only when `start` is at the end."""
    piece = _Piece(start, min(job.total, start + max_lines), max_bytes, job.status.terminal)
    if not piece.full:
        for first, lines in jobs.result_blocks(job.id, start):
            if not piece.gap_to(first):
                break
            piece.block(first, lines)
            if piece.full:
                break
        else:
            piece.gap_to(piece.stop)
    return b"".join(piece.parts), piece.position
