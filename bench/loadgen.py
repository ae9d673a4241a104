"""The client side of `python -m bench load` against fanout: many HTTP clients in one process.

`python -m bench.loadgen URL SECONDS CLIENTS HOOK_URL` runs the mix for SECONDS and prints its
figures as JSON on stdout. One asyncio loop (uvloop) drives every client over keep-alive
connections with a minimal HTTP/1.1 client (the server always sends Content-Length), so a
request costs the generator tens of microseconds: it is not the bottleneck.

The mix (`POSTERS` of the clients post, the rest poll):
- a poster posts a job of 10-100 no-op items with a webhook, and as soon as it is answered the
  next one (a closed loop); it notes each job's id and the time the POST was sent;
- a poller reads one of the jobs posted so far (`GET /jobs/{id}`), and every fifth time the
  first page of the list (`GET /jobs?limit=20`), waiting POLL_SECONDS between requests, as an
  application polling its jobs would.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

POSTERS = 0.3
POLL_SECONDS = 0.1
MIN_ITEMS, MAX_ITEMS = 10, 100
TASK = "echo"


class Connection:
    """One keep-alive HTTP/1.1 connection; requests on it are made one at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """The status and body; status 0 when the connection failed (it is opened again)."""
        try:
            return await self._request(method, path, body)
        except (OSError, asyncio.IncompleteReadError):
            if self.writer is not None:
                self.writer.close()
            self.reader = self.writer = None
            return 0, b""

    async def _request(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nhost: {self.host}\r\ncontent-length: {len(body)}\r\n"
        if body:
            head += "content-type: application/json\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line = await self.reader.readuntil(b"\r\n")
        length = 0
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)


@dataclass
class Figures:
    posts: list[float] = field(default_factory=list)  # seconds each accepted POST took
    gets: list[float] = field(default_factory=list)
    lists: list[float] = field(default_factory=list)
    sent: dict[str, float] = field(default_factory=dict)  # job id -> time.time() of its POST
    errors: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def poster(
    connection: Connection, hook: str, until: float, figures: Figures, jobs: list[str]
) -> None:
    while time.monotonic() < until:
        size = random.randint(MIN_ITEMS, MAX_ITEMS)
        body = json.dumps({"task": TASK, "items": list(range(size)), "webhook": {"url": hook}})
        sent, started = time.time(), time.perf_counter()
        status, answer = await connection.request("POST", "/jobs", body.encode())
        if status != 202:
            figures.error(f"POST {status}")
            await asyncio.sleep(POLL_SECONDS)  # a refused post (429): back off as a client would
            continue
        figures.posts.append(time.perf_counter() - started)
        job_id = json.loads(answer)["id"]
        figures.sent[job_id] = sent
        jobs.append(job_id)


async def poller(connection: Connection, until: float, figures: Figures, jobs: list[str]) -> None:
    turn = random.randrange(5)
    while time.monotonic() < until:
        turn += 1
        listing = turn % 5 == 0 or not jobs
        path = "/jobs?limit=20" if listing else f"/jobs/{random.choice(jobs)}"
        started = time.perf_counter()
        status, _ = await connection.request("GET", path)
        if status != 200:
            figures.error(f"GET {status}")
        else:
            (figures.lists if listing else figures.gets).append(time.perf_counter() - started)
        await asyncio.sleep(POLL_SECONDS)


async def main(url: str, seconds: float, clients: int, hook: str) -> Figures:
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    figures, jobs = Figures(), list[str]()
    until = time.monotonic() + seconds
    posters = round(clients * POSTERS)
    started = time.process_time()
    await asyncio.gather(
        *(poster(Connection(host, port), hook, until, figures, jobs) for _ in range(posters)),
        *(poller(Connection(host, port), until, figures, jobs) for _ in range(clients - posters)),
    )
    figures.cpu_seconds = time.process_time() - started
    return figures


if __name__ == "__main__":
    import uvloop  # uvicorn's extra brings it

    url, seconds, clients, hook = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    found = uvloop.run(main(url, seconds, clients, hook))
    sys.stdout.write(json.dumps(asdict(found)) + "\n")
