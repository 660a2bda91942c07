"""`quorum serve --workers N` on Linux: each worker listens on its own socket of the same port
(``quorum.serving``), so keep-alive connections spread over the workers, a dead worker is
replaced, and SIGTERM stops them all."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tests.cli.test_serve import free_port, wait_until_up

from quorum.serving import balances_by_port

pytestmark = pytest.mark.skipif(not balances_by_port(), reason="SO_REUSEPORT balancing is Linux's")


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]


def _workers(pid: int, port: int) -> list[int]:
    """The server's worker processes: those of its children that listen on the port."""
    return [child for child in _children(pid) if _listening_inodes(port) & _socket_inodes(child)]


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except FileNotFoundError:  # the process ended since it was listed (a killed worker)
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _tcp(port: int, state: str) -> set[str]:
    """Inodes of IPv4 TCP sockets on local ``port`` in ``state`` (0A listen, 01 established)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
            inodes.add(fields[9])
    return inodes


def _listening_inodes(port: int) -> set[str]:
    return _tcp(port, "0A")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUORUM_")}
    env["QUORUM_DATABASE_URL"] = f"sqlite:///{tmp_path}/quorum.db"
    with (tmp_path / "serve.log").open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "quorum", "serve", "--port", str(port), "--workers", "2"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_until_up(f"http://127.0.0.1:{port}", process)
            _wait_for(lambda: len(_workers(process.pid, port)) == 2)
            yield process, port
        finally:
            process.terminate()
            process.wait(timeout=30)


def _wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_the_supervisor_says_where_to_open_quorum(
    server: tuple[subprocess.Popen[str], int], tmp_path: Path
) -> None:
    _, port = server
    line = f"Quorum on http://127.0.0.1:{port}"
    _wait_for(lambda: line in (tmp_path / "serve.log").read_text())


@pytest.mark.slow
def test_connections_spread_over_the_workers(server: tuple[subprocess.Popen[str], int]) -> None:
    process, port = server

    async def burst() -> list[int]:
        # Opened all at once and kept alive, as the annotators of the benchmark do: with one
        # shared socket the first worker to wake accepted them all.
        clients = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") for _ in range(24)]
        try:
            replies = await asyncio.gather(*(client.get("/healthz") for client in clients))
            assert {reply.status_code for reply in replies} == {200}
            established = _tcp(port, "01")
            return [
                len(_socket_inodes(worker) & established) for worker in _workers(process.pid, port)
            ]
        finally:
            await asyncio.gather(*(client.aclose() for client in clients))

    held = asyncio.run(burst())
    # The kernel hashes each connection to one of the two sockets: all 24 on one worker would
    # happen with probability 2**-23.
    assert sum(held) == 24 and min(held) > 0, held


@pytest.mark.slow
def test_a_dead_worker_is_replaced_and_sigterm_stops_all(
    server: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = server
    time.sleep(5)  # past the start-up window, where a death stops the server instead
    first, second = _workers(process.pid, port)
    os.kill(first, signal.SIGKILL)
    _wait_for(
        lambda: len(_workers(process.pid, port)) == 2 and first not in _workers(process.pid, port)
    )
    for _ in range(20):  # every socket of the port has a worker behind it
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert client.get("/healthz", timeout=5).status_code == 200
    workers = _workers(process.pid, port)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


@pytest.mark.slow
def test_workers_stop_when_their_supervisor_is_killed(
    server: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = server
    workers = _workers(process.pid, port)
    process.kill()  # SIGKILL: the supervisor cannot stop anything itself
    process.wait(timeout=30)
    try:
        _wait_for(lambda: not [pid for pid in workers if _alive(pid)])
        assert not _listening_inodes(port)
    finally:
        for pid in workers:  # orphans of a failed run
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether the process still runs (a zombie waiting for its reaper does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False
