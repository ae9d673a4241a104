"""Celery as a benchmarked system: a private redis-server, Celery workers, and a chord.

Two systems share one cluster: `celery-chord` (a chord over a group of one task per item) and
`celery-chunks` (the items batched with `task.chunks(...)`, as an experienced Celery user
tunes it, under the same kind of chord callback). Completion is timed by the callback's own
side effect, an RPUSH to a Redis key the benchmark BLPOPs, because `AsyncResult.get()` on a
chord can hang; whether `get()` returned afterwards is checked and reported.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bench.fanout_system import POLL_SECONDS, STARTUP_SECONDS, free_port, stop_tree
from bench.system import NOOP, BenchError, Run, RunTimedOut, Workload

if TYPE_CHECKING:
    import redis

ROOT = Path(__file__).resolve().parents[2]
# How long `AsyncResult.get()` may take once the callback has visibly run before it counts as
# hung: the callback's result is stored in the same moment as its side effect.
GET_SECONDS = 5.0
STOP_SECONDS = 10.0
REDIS_PORT_TRIES = 5  # ports tried when another process takes the free one first
INSTALL_HINT = (
    "the Celery peer needs Debian's redis-server and the celery[redis] and gevent packages:"
    " run scripts/install-bench-deps (apt-get install redis-server wrk) and"
    " pip install -e '.[bench]'"
)


def missing() -> list[str]:
    """What the Celery peer needs that is not installed, empty when it can run."""
    import importlib.util

    found = [shutil.which("redis-server") is not None]
    found += [importlib.util.find_spec(name) is not None for name in ("celery", "redis", "gevent")]
    names = ["redis-server", "celery", "redis", "gevent"]
    return [name for name, ok in zip(names, found, strict=True) if not ok]


def redis_client(url: str) -> redis.Redis:
    import redis

    return redis.Redis.from_url(url)


class CeleryCluster:
    """A private redis-server on a free loopback port and the Celery workers for one pool at a
    time: prefork (concurrency = CPUs) for no-op and CPU-bound work; for I/O, one gevent
    worker per CPU with `io_concurrency` greenlets each (fanout's workers x async concurrency).
    Switching pools stops the other pool's workers, so each workload's RSS is its own."""

    def __init__(
        self, workers: int, io_concurrency: int, pick_port: Callable[[], int] = free_port
    ) -> None:
        self.workers = workers
        self.pick_port = pick_port
        self.io_concurrency = io_concurrency
        self.url = ""
        self.pool: str | None = None
        self.redis_process: subprocess.Popen[bytes] | None = None
        self.worker_processes: list[subprocess.Popen[bytes]] = []
        self.client: redis.Redis | None = None
        self.app: Any = None
        self.tasks: dict[str, Any] = {}
        self.done: Any = None
        self.dir: Path | None = None
        self.log: IO[bytes] | None = None

    def start(self) -> None:
        if self.redis_process is not None:
            return
        self.dir = Path(tempfile.mkdtemp(prefix="celery-bench-"))
        self.log = (self.dir / "celery.log").open("wb")
        self._start_redis()
        # The app reads the URL at import; import it (once) only now that the URL is known.
        os.environ["BENCH_REDIS_URL"] = self.url
        from bench.peers import celery_app

        celery_app.app.conf.update(broker_url=f"{self.url}/0", result_backend=f"{self.url}/1")
        self.app, self.tasks, self.done = celery_app.app, celery_app.TASKS, celery_app.chord_done

    def _start_redis(self) -> None:
        """redis-server on a port free a moment before it binds: if another process takes the
        port first, redis exits saying so and another port is tried."""
        import redis  # here, so that a machine without it is told how to install it

        assert self.dir is not None and self.log is not None
        for _ in range(REDIS_PORT_TRIES):
            logged = (self.dir / "celery.log").stat().st_size
            port = self.pick_port()
            self.url = f"redis://127.0.0.1:{port}"
            command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            command += ["--appendonly", "no", "--dir", str(self.dir)]
            self.redis_process = subprocess.Popen(command, stdout=self.log, stderr=self.log)
            self.client = redis.Redis.from_url(f"{self.url}/2")
            try:
                self._wait(self._redis_up, "redis-server")
                return
            except BenchError:
                with (self.dir / "celery.log").open("rb") as log:
                    log.seek(logged)
                    if b"Address already in use" not in log.read():
                        raise
                stop_tree(self.redis_process)
        raise BenchError(f"redis-server found no free port in {REDIS_PORT_TRIES} tries")

    def _redis_up(self) -> bool:
        """Our redis-server answers (not another process that had the port)."""
        import redis

        assert self.client is not None and self.redis_process is not None
        try:
            return int(self.client.info("server")["process_id"]) == self.redis_process.pid
        except redis.RedisError:  # not listening yet, or another process that does not answer
            return False

    def _wait(self, ready: Any, what: str) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            exited = [p for p in self._processes() if p.poll() is not None]
            if exited:
                raise BenchError(f"{what}: a process exited: {self._log()}")
            if ready():
                return
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._processes()[-1].wait(POLL_SECONDS)
        raise BenchError(f"{what} not ready within {STARTUP_SECONDS} s: {self._log()}")

    def _processes(self) -> list[subprocess.Popen[bytes]]:
        head = [] if self.redis_process is None else [self.redis_process]
        return head + self.worker_processes

    def _log(self) -> str:
        return "" if self.dir is None else (self.dir / "celery.log").read_text()[-2000:]

    def pool_description(self, pool: str) -> str:
        if pool == "gevent":
            return f"gevent pool, {self.workers} workers x {self.io_concurrency} greenlets"
        return f"prefork pool, concurrency {self.workers}"

    def slots(self, pool: str) -> int:
        return self.workers * (self.io_concurrency if pool == "gevent" else 1)

    def use(self, pool: str) -> None:
        """Have exactly `pool`'s workers running, and wait until each answers a ping."""
        if self.pool == pool and all(p.poll() is None for p in self.worker_processes):
            return
        self._stop_workers(signal.SIGTERM)
        base = [sys.executable, "-m", "celery", "-A", "bench.peers.celery_app", "worker"]
        base += ["--loglevel", "WARNING", "--without-gossip", "--without-mingle", "-Q", "bench"]
        env = {**os.environ, "BENCH_REDIS_URL": self.url, "PYTHONPATH": str(ROOT)}
        if pool == "gevent":
            # One process per CPU; prefetch 1 so one worker does not take all the chunks.
            commands = [
                [
                    *base,
                    "-P",
                    "gevent",
                    "-c",
                    str(self.io_concurrency),
                    "-n",
                    f"io{i}@bench",
                    "--prefetch-multiplier",
                    "1",
                ]
                for i in range(self.workers)
            ]
        else:
            commands = [[*base, "-P", "prefork", "-c", str(self.workers), "-n", "cpu@bench"]]
        self.worker_processes = [
            subprocess.Popen(c, env=env, cwd=ROOT, stdout=self.log, stderr=self.log)
            for c in commands
        ]
        self.pool = pool
        names = {c[c.index("-n") + 1] for c in commands}
        self._wait(lambda: self._answering(names), f"celery {pool} workers")

    def _answering(self, names: set[str]) -> bool:
        replies = self.app.control.ping(destination=sorted(names), timeout=0.5)
        return {name for reply in replies for name in reply} >= names

    def clear_results(self) -> None:
        """Drop the finished run's results and markers, so Redis does not grow run by run."""
        assert self.client is not None
        self.client.flushdb()  # db 2, the markers
        with redis_client(f"{self.url}/1") as results:
            results.flushdb()

    def reset(self) -> None:
        """After a run past its deadline: kill the workers, drop every queued message and
        result; the next `use` starts fresh workers."""
        self._stop_workers(signal.SIGKILL)
        if self.client is not None:
            self.client.flushall()

    def _stop_workers(self, signum: signal.Signals) -> None:
        for process in self.worker_processes:
            stop_tree(process, signum, STOP_SECONDS)
        self.worker_processes = []
        self.pool = None

    def root_pids(self) -> list[int]:
        return [p.pid for p in self._processes()]

    def stop(self) -> None:
        self._stop_workers(signal.SIGTERM)
        if self.redis_process is not None:
            stop_tree(self.redis_process, signal.SIGTERM, STOP_SECONDS)
            self.redis_process = None
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.log is not None:
            self.log.close()
            self.log = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


class CelerySystem:
    """`chord(header)(done.s(key))`, header a group of one task per item, or (`chunked`) of
    `task.chunks(...)`: enough chunks for 4 per prefork process (Pool.map's own rule), or one per
    greenlet slot for I/O, since a chunk runs its items one after another."""

    def __init__(self, cluster: CeleryCluster, chunked: bool) -> None:
        self.cluster = cluster
        self.chunked = chunked
        self.name = "celery-chunks" if chunked else "celery-chord"

    def start(self) -> None:
        self.cluster.start()

    def root_pids(self) -> list[int]:
        return self.cluster.root_pids()

    def stop(self) -> None:
        self.cluster.stop()

    @staticmethod
    def pool_for(workload: Workload) -> str:
        return "gevent" if workload.task == "sleep" else "prefork"

    def chunk_size(self, items: int, pool: str) -> int:
        per_slot = 1 if pool == "gevent" else 4
        return max(1, math.ceil(items / (self.cluster.slots(pool) * per_slot)))

    def run(self, items: int, deadline: float, workload: Workload = NOOP) -> Run:
        from celery import chord, group
        from celery.exceptions import TimeoutError as CeleryTimeout

        cluster = self.cluster
        pool = self.pool_for(workload)
        cluster.use(pool)
        assert cluster.client is not None
        task = cluster.tasks[workload.task]
        key = f"done:{uuid.uuid4()}"
        args = [(item, *workload.params.values()) for item in workload.items(items)]
        if self.chunked:
            header = task.chunks(args, self.chunk_size(items, pool)).group()
        else:
            header = group(task.s(*a) for a in args)
        started = time.perf_counter()
        result = chord(header)(cluster.done.s(key))
        sent = time.perf_counter() - started
        count = self._wait_marker(key, deadline)
        seconds = time.perf_counter() - started
        if count is None:
            cluster.reset()
            raise RunTimedOut(f"{self.name}: the chord callback had not run by the deadline")
        if count != items:
            raise BenchError(f"{self.name}: the callback saw {count} outputs, expected {items}")
        milestones = {"sent": sent, "callback": seconds}
        notes: tuple[str, ...] = ()
        try:
            result.get(timeout=GET_SECONDS)
            milestones["get"] = time.perf_counter() - started
        except CeleryTimeout:
            notes = (f"AsyncResult.get() hung: no return {GET_SECONDS:.0f} s after the callback",)
        cluster.clear_results()
        return Run(items, seconds, items, 0, milestones, notes)

    def _wait_marker(self, key: str, deadline: float) -> int | None:
        assert self.cluster.client is not None
        while (remaining := deadline - time.monotonic()) > 0:
            # BLPOP blocks in Redis until the callback pushes, or for at most `remaining`.
            popped = self.cluster.client.blpop([key], timeout=min(1.0, max(remaining, 0.01)))
            if popped is not None:
                return int(popped[1])
        return None
