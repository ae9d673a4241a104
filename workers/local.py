"""The one-machine runtime: worker processes under a supervisor, the reconciler thread (the
notifier is `fanout.workers.notifier`).

Worker processes are forked from a forkserver that has already imported fanout and the task
modules, so replacing a dead worker costs milliseconds. When one dies, the messages it held are
made visible at once instead of after their visibility timeout; their receive counts stand, so a
chunk that keeps killing workers still reaches the dead letters and is split.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess

from fanout import logs
from fanout.backends.sqlite import SqliteChunkQueue
from fanout.service import Fanout
from fanout.settings import Settings
from fanout.wiring import build
from fanout.workers import chunk_worker

log = logging.getLogger("fanout.runtime")


def _worker_process(settings: Settings, supervisor: int) -> None:
    logs.configure(settings)  # a fresh interpreter: the parent's logging is not inherited
    chunk_worker.main(build(settings), supervisor)


class Supervisor:
    """Keeps `count` worker processes alive until stopped."""

    def __init__(self, settings: Settings, service: Fanout, count: int) -> None:
        self.settings = settings
        self.service = service
        self.count = count
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(
            ["fanout.wiring", "fanout.workers.chunk_worker", *settings.tasks]
        )
        self.processes: list[BaseProcess] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self.restarts = 0

    def start(self) -> None:
        self.processes = [self._spawn() for _ in range(self.count)]
        self.thread.start()

    def _spawn(self) -> BaseProcess:
        process = self.context.Process(
            target=_worker_process,
            args=(self.settings, os.getpid()),
            name="fanout-worker",
            daemon=True,
        )
        process.start()
        return process

    def _watch(self) -> None:
        while not self.stopping.wait(0.05):
            for i, process in enumerate(self.processes):
                if process.is_alive() or self.stopping.is_set():
                    continue
                self._reclaim(process)
                self.restarts += 1
                log.warning(
                    "worker %s exited with %s; starting another", process.pid, process.exitcode
                )
                self.processes[i] = self._spawn()

    def _reclaim(self, process: BaseProcess) -> None:
        queue = self.service.backend.queue
        if isinstance(queue, SqliteChunkQueue) and process.pid is not None:
            queue.release_owner(process.pid)

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join()
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join()
            self._reclaim(process)


class Loop:
    """A daemon thread calling `step` every `interval` seconds until stopped."""

    def __init__(self, name: str, interval: float, step: Callable[[], None]) -> None:
        self.interval = interval
        self.step = step
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.step()
            except Exception:
                log.exception("%s failed; will try again", self.thread.name)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
