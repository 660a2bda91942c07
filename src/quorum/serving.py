"""``quorum serve --workers N``: N server processes, each with its own listening socket.

uvicorn's own workers share one listening socket, so whichever process wakes first accepts a
burst of new connections; with keep-alive clients one worker then serves nearly everything
(measured: all 32 connections of the annotation benchmark on one of two workers, every run),
and the other core sits idle. On Linux each worker here instead binds its own socket to the
same address with ``SO_REUSEPORT``, and the kernel spreads new connections over them by a hash
of the client's address and port. A worker that dies takes its socket with it (the kernel stops
sending it connections) and is started again; the workers stop when the supervisor dies.

Elsewhere (no ``SO_REUSEPORT`` balancing), and for one worker, uvicorn runs as usual.
"""

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn

APP = "quorum.app:app_from_environment"
# A worker that dies this soon after it started is broken (bad settings, port taken): stop.
STARTUP_SECONDS = 5.0
PR_SET_PDEATHSIG = 1  # prctl(2), Linux
log = logging.getLogger("uvicorn.error")  # uvicorn's log, as its own supervisor writes


@dataclass(frozen=True)
class ServeOptions:
    host: str
    port: int
    workers: int
    access_log: bool


def serve(options: ServeOptions) -> None:
    """Run the app until SIGINT or SIGTERM (the environment carries its settings)."""
    uvicorn_options: dict[str, Any] = {
        "factory": True,
        "access_log": options.access_log,
        "log_level": "info",
    }
    if options.workers == 1 or not balances_by_port():
        uvicorn.run(
            APP, host=options.host, port=options.port, workers=options.workers, **uvicorn_options
        )
        return
    Supervisor(options, uvicorn_options).run()


def balances_by_port() -> bool:
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) that shares the port with the other workers'."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def _worker(options: ServeOptions, uvicorn_options: dict[str, Any], supervisor: int) -> None:
    _stop_with(supervisor)
    sock = listening_socket(options.host, options.port)
    config = uvicorn.Config(APP, host=options.host, port=options.port, **uvicorn_options)
    uvicorn.Server(config).run(sockets=[sock])


def _stop_with(supervisor: int) -> None:
    """Have the kernel send this worker SIGTERM when its supervisor dies, however it dies: a
    supervisor killed with SIGKILL (or by the OOM killer) can stop nothing itself, and orphaned
    workers would go on answering on the port next to a restarted server."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("Worker [%s] cannot follow its supervisor's death", os.getpid())
    if os.getppid() != supervisor:  # it died before the request above
        sys.exit(0)


class Supervisor:
    """Starts the workers, starts a dead one again, stops them all on SIGINT or SIGTERM."""

    def __init__(self, options: ServeOptions, uvicorn_options: dict[str, Any]) -> None:
        self.options = options
        self.uvicorn_options = uvicorn_options
        self.context = multiprocessing.get_context("spawn")
        self.stopping = False

    def run(self) -> None:
        uvicorn.Config(APP, **self.uvicorn_options)  # sets up uvicorn's logging here too
        # NOTE: bound, never listening: it proves the address is free before any worker
        # starts (a clear error at once) and holds the port while they come up.
        with listening_socket(self.options.host, self.options.port):
            signal.signal(signal.SIGINT, self._stop)
            signal.signal(signal.SIGTERM, self._stop)
            workers = [self._start() for _ in range(self.options.workers)]
            started = {worker.pid: time.monotonic() for worker in workers}
            host = f"[{self.options.host}]" if ":" in self.options.host else self.options.host
            log.info(
                "Started %d workers [%s]: Quorum on http://%s:%d (Press CTRL+C to quit)",
                len(workers), os.getpid(), host, self.options.port,
            )  # fmt: skip
            while not self.stopping:
                time.sleep(0.2)
                for index, worker in enumerate(workers):
                    if worker.is_alive() or self.stopping:
                        continue
                    if time.monotonic() - started[worker.pid] < STARTUP_SECONDS:
                        log.error("Worker [%s] failed to start; stopping", worker.pid)
                        self.stopping = True
                        break
                    log.warning("Worker [%s] died; starting another", worker.pid)
                    workers[index] = self._start()
                    started[workers[index].pid] = time.monotonic()
            self._stop_all(workers)

    def _start(self) -> BaseProcess:
        worker = self.context.Process(
            target=_worker, args=(self.options, self.uvicorn_options, os.getpid()), daemon=False
        )
        worker.start()
        return worker

    def _stop(self, signum: int, _: FrameType | None) -> None:
        log.info("Received %s, stopping", signal.Signals(signum).name)
        self.stopping = True

    @staticmethod
    def _stop_all(workers: list[BaseProcess]) -> None:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()  # SIGTERM: uvicorn finishes the requests under way
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
                worker.join()
