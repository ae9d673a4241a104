"""The ChunkQueue port, written once for every backend: SQS semantics (visibility timeout,
receive count, dead letters after `max_receive_count` receives, receipts that go stale).

Where time must pass, a short visibility timeout runs out while the test polls with a deadline;
a second message sent alongside serves as the clock that shows it has run out.
"""

from __future__ import annotations

from fanout.models import ChunkRef, Delivery, JobId
from fanout.service import Backend
from tests.contract.support import MAX_RECEIVE_COUNT
from tests.waiting import wait_until

SHORT = 0.2
LONG = 300.0
# Generous, so that a backend rounding visibility up to whole seconds (SQS) passes too.
EXPIRY = 15.0

A = ChunkRef(JobId("job-1"), 0, 10)
B = ChunkRef(JobId("job-1"), 10, 20)


def chunks_of(deliveries: list[Delivery]) -> list[ChunkRef]:
    return sorted((d.chunk for d in deliveries), key=lambda c: (c.job_id, c.start))


def receive_all(backend: Backend, count: int, visibility: float) -> list[Delivery]:
    """Receive until `count` messages came (a queue may return fewer than are visible)."""
    got: list[Delivery] = []

    def more() -> bool:
        got.extend(backend.queue.receive(10, visibility))
        return len(got) >= count

    wait_until(more, EXPIRY)
    return got


def test_a_sent_chunk_is_received_once_with_a_receive_count_of_one(backend: Backend) -> None:
    backend.queue.send([A])

    [delivery] = receive_all(backend, 1, LONG)

    assert (delivery.chunk, delivery.receive_count) == (A, 1)
    assert delivery.receipt


def test_sending_nothing_is_harmless(backend: Backend) -> None:
    backend.queue.send([])

    assert backend.queue.receive(10, LONG) == []


def test_receive_returns_at_most_max_messages(backend: Backend) -> None:
    sent = [ChunkRef(JobId("job-1"), i, i + 1) for i in range(5)]
    backend.queue.send(sent)

    first = backend.queue.receive(2, LONG)
    rest = receive_all(backend, 5 - len(first), LONG)

    assert len(first) <= 2
    assert chunks_of(first + rest) == sent


def test_a_received_message_is_hidden_for_its_visibility_timeout(backend: Backend) -> None:
    backend.queue.send([A])
    receive_all(backend, 1, LONG)

    assert backend.queue.receive(10, LONG) == []


def test_a_message_not_deleted_comes_back_after_its_visibility_timeout_with_a_higher_count(
    backend: Backend,
) -> None:
    backend.queue.send([A])
    [first] = receive_all(backend, 1, SHORT)

    [second] = wait_until(lambda: backend.queue.receive(10, SHORT), EXPIRY)

    assert (second.chunk, second.receive_count) == (A, 2)
    assert second.receipt != first.receipt


def test_a_deleted_message_is_never_delivered_again(backend: Backend) -> None:
    backend.queue.send([A, B])
    deliveries = receive_all(backend, 2, SHORT)
    [of_a] = [d for d in deliveries if d.chunk == A]

    backend.queue.delete(of_a.receipt)

    # B coming back shows the visibility timeout A would have come back after has run out.
    back = wait_until(lambda: backend.queue.receive(10, LONG), EXPIRY)
    back += backend.queue.receive(10, LONG)
    assert chunks_of(back) == [B]


def test_deleting_with_a_stale_receipt_never_fails(backend: Backend) -> None:
    # SQS may or may not delete the message then ("the request succeeds, but the message might
    # not be deleted", DeleteMessage's reference); the core relies only on the call succeeding.
    # The SQLite queue promises more: tests/test_sqlite_queue.py.
    backend.queue.send([A])
    [stale] = receive_all(backend, 1, SHORT)
    [current] = wait_until(lambda: backend.queue.receive(10, SHORT), EXPIRY)

    backend.queue.delete(stale.receipt)
    backend.queue.delete(current.receipt)
    backend.queue.delete(current.receipt)

    assert current.receipt != stale.receipt
    assert backend.queue.receive(10, LONG) == []


def test_extending_the_visibility_timeout_keeps_a_message_hidden(backend: Backend) -> None:
    backend.queue.send([A, B])
    deliveries = receive_all(backend, 2, SHORT)
    [of_a] = [d for d in deliveries if d.chunk == A]

    backend.queue.extend(of_a.receipt, LONG)

    back = wait_until(lambda: backend.queue.receive(10, LONG), EXPIRY)
    back += backend.queue.receive(10, LONG)
    assert chunks_of(back) == [B]


def test_a_message_received_max_receive_count_times_moves_to_the_dead_letters(
    backend: Backend,
) -> None:
    backend.queue.send([A])
    counts = [receive_all(backend, 1, SHORT)[0].receive_count]
    while len(counts) < MAX_RECEIVE_COUNT:
        [delivery] = wait_until(lambda: backend.queue.receive(10, SHORT), EXPIRY)
        counts.append(delivery.receive_count)
    assert counts == list(range(1, MAX_RECEIVE_COUNT + 1))

    def dead_lettered() -> list[Delivery]:
        assert backend.queue.receive(10, SHORT) == [], "delivered past max_receive_count"
        return backend.queue.receive_dead(10, LONG)

    [dead] = wait_until(dead_lettered, EXPIRY)
    assert dead.chunk == A
    assert backend.queue.receive_dead(10, LONG) == []

    backend.queue.delete(dead.receipt)
    assert backend.queue.receive(10, LONG) == []


def test_a_dead_letter_not_deleted_comes_back_to_the_dead_letters(backend: Backend) -> None:
    backend.queue.send([A])
    receive_all(backend, 1, SHORT)

    def dead_lettered() -> list[Delivery]:
        backend.queue.receive(10, SHORT)
        return backend.queue.receive_dead(10, SHORT)

    [first] = wait_until(dead_lettered, EXPIRY)
    [again] = wait_until(lambda: backend.queue.receive_dead(10, LONG), EXPIRY)

    assert again.chunk == first.chunk == A
    assert again.receipt != first.receipt
    assert backend.queue.receive(10, LONG) == []
