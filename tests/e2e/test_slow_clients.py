"""Slow and oversized clients against the real `fanout serve`: partial heads and dripped bodies
are cut off, an unauthenticated or oversized body is refused before it is sent. Raw sockets on
127.0.0.1; every loop bounded."""

from __future__ import annotations

from urllib.parse import urlsplit

from bench.hostile import SlowClients, answer_to
from tests.e2e.harness import Launcher, Server

LIMITS = {"FANOUT_HEADER_TIMEOUT": "2", "FANOUT_MIN_BODY_RATE": "1024"}


def port_of(server: Server) -> int:
    port = urlsplit(server.url).port
    assert port is not None
    return port


def test_two_hundred_slowloris_connections_are_closed_and_the_server_keeps_answering(
    fanout: Launcher,
) -> None:
    server = fanout.serve(workers=1, env=LIMITS)
    clients = SlowClients(port_of(server), 200, b"GET /jobs HTTP/1.1\r\nHost: localhost\r\n")
    try:
        assert server.client.get("/healthz").status_code == 200
        clients.drip(b"x", every=0.5, lasting=30.0)
        answers = list(clients.answers.values())
    finally:
        clients.close()

    assert len(answers) == 200, f"{200 - len(answers)} connections still open after 30 s"
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), {a[:40] for a in answers}
    assert server.client.get("/healthz").status_code == 200


def test_a_connection_that_sends_nothing_is_closed(fanout: Launcher) -> None:
    server = fanout.serve(workers=1, env=LIMITS)
    clients = SlowClients(port_of(server), 5, b"")
    try:
        clients.drip(b"", every=0.5, lasting=30.0)
        answers = list(clients.answers.values())
    finally:
        clients.close()

    assert len(answers) == 5


def test_a_dripped_body_is_cut_off_with_a_408(fanout: Launcher) -> None:
    server = fanout.serve(workers=1, env=LIMITS)
    head = (
        b"POST /jobs HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\n"
        b"content-length: 100000\r\n\r\n"
    )
    clients = SlowClients(port_of(server), 3, head)
    try:
        clients.drip(b" ", every=0.5, lasting=30.0)
        answers = list(clients.answers.values())
    finally:
        clients.close()

    assert len(answers) == 3
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers
    assert server.client.get("/jobs").json()["items"] == []


def test_an_unauthenticated_body_is_refused_before_it_is_sent(fanout: Launcher) -> None:
    server = fanout.serve(workers=1, env={"FANOUT_API_KEYS": "k1"})
    head = (
        b"PATCH /jobs/x HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\n"
        b"content-length: 300000000\r\n\r\n"
    )

    assert answer_to(port_of(server), head).startswith(b"HTTP/1.1 401 ")


def test_a_body_over_the_limit_is_refused_before_it_is_sent(fanout: Launcher) -> None:
    server = fanout.serve(workers=1)
    head = (
        b"POST /jobs HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\n"
        b"content-length: 300000000\r\n\r\n"
    )

    assert answer_to(port_of(server), head).startswith(b"HTTP/1.1 413 ")
