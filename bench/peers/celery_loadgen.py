"""The client side of `python -m bench load` against Celery: the same mix as `bench/loadgen.py`,
from threads (Celery's client is synchronous), in one process.

`python -m bench.peers.celery_loadgen REDIS_URL SECONDS CLIENTS` prints its figures as JSON.
A poster sends a chord of 10-100 `echo` tasks whose callback notes when it ran
(`celery_app.load_done`), with `apply_async`, then the next; the time `chord(...)(...)` takes
to return is its submit time. A poller reads the state of one of the chords sent so far
(`AsyncResult(id).state`, one Redis GET), waiting POLL_SECONDS between reads. Celery has no
listing of tasks: pollers only poll.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
import uuid
from dataclasses import asdict

from bench.loadgen import MAX_ITEMS, MIN_ITEMS, POLL_SECONDS, POSTERS, Figures


def main(seconds: float, clients: int) -> Figures:
    from celery import chord, group

    from bench.peers import celery_app

    figures, sent_ids, lock = Figures(), list[str](), threading.Lock()
    until = time.monotonic() + seconds

    def poster() -> None:
        while time.monotonic() < until:
            size = random.randint(MIN_ITEMS, MAX_ITEMS)
            key = uuid.uuid4().hex
            header = group(celery_app.echo.s(i) for i in range(size))
            sent, started = time.time(), time.perf_counter()
            result = chord(header)(celery_app.chord_load_done.s(key))
            with lock:
                figures.posts.append(time.perf_counter() - started)
                figures.sent[key] = sent
                sent_ids.append(result.id)

    def poller() -> None:
        while time.monotonic() < until:
            with lock:
                chosen = random.choice(sent_ids) if sent_ids else None
            if chosen is not None:
                started = time.perf_counter()
                state = celery_app.app.AsyncResult(chosen).state
                with lock:
                    figures.gets.append(time.perf_counter() - started)
                    if state == "FAILURE":
                        figures.error("chord failed")
            time.sleep(POLL_SECONDS)

    posters = round(clients * POSTERS)
    threads = [threading.Thread(target=poster) for _ in range(posters)]
    threads += [threading.Thread(target=poller) for _ in range(clients - posters)]
    started = time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    figures.cpu_seconds = time.process_time() - started
    return figures


if __name__ == "__main__":
    os.environ["BENCH_REDIS_URL"] = sys.argv[1]
    found = main(float(sys.argv[2]), int(sys.argv[3]))
    sys.stdout.write(json.dumps(asdict(found)) + "\n")
