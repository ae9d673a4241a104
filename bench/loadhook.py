"""The webhook receiver of `python -m bench load`: an asyncio server in a process of its own that
answers every POST 204 and notes when each job's event arrived.

`python -m bench.loadhook OUT` listens on a free loopback port and prints it; `GET` answers how
many events have arrived (`{"arrived": n}`); on SIGTERM it writes `{job id: time.time() of
arrival}` (the first arrival of each event) to OUT as JSON.
Each request is read with its Content-Length and answered at once, so a thousand webhooks a
second cost it a few percent of a core.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

EVENT_PREFIX = "evt_"  # webhook-id is evt_<job id> (fanout.service)


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readuntil(b"\r\n")
                length, event = 0, ""
                while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"webhook-id":
                        event = value.strip().decode()
                await reader.readexactly(length)
                if request_line.startswith(b"GET"):
                    count = json.dumps({"arrived": len(self.arrivals)}).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(count), count)
                    )
                    continue
                self.arrivals.setdefault(event.removeprefix(EVENT_PREFIX), time.time())
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def main(out: Path) -> None:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await stopping.wait()
    server.close()
    out.write_text(json.dumps(receiver.arrivals))


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(Path(sys.argv[1])))
