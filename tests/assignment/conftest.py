"""Fixtures of the assignment engine's tests: projects to label, real server processes, and
scratch PostgreSQL databases for tests that cannot share the per-test transaction."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import Factory, Person, scratch_postgres_database

from quorum.db.engine import Database, make_engine
from quorum.db.migrate import upgrade
from quorum.db.models import Project, Role
from quorum.domain import projects, users
from quorum.domain.tasks import Record, import_tasks

CHOICE = {"questions": [{"name": "label", "kind": "choice", "options": ["yes", "no"]}]}


@dataclass
class Team:
    project: Project
    owner: Person
    annotators: list[Person]


def make_team(
    make: Factory, n_annotators: int, tasks: list[dict[str, Any]], policy: dict[str, Any]
) -> Team:
    owner = make.person("owner")
    annotators = [make.person(f"a{i}") for i in range(n_annotators)]
    project = make.project(owner, CHOICE, policy, members={Role.annotator: annotators})
    make.tasks(project, tasks)
    return Team(project, owner, annotators)


# --- scratch databases and server processes --------------------------------------------------


@pytest.fixture
def scratch_postgres(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database next to the test one, dropped afterwards."""
    with scratch_postgres_database(request.config, "loop") as url:
        yield url


@pytest.fixture
def scratch_sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/loop.db"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@dataclass
class Seeded:
    project_id: int
    owner_token: str
    tokens: list[str]


def seed(url: str, n_annotators: int, n_tasks: int, policy: dict[str, Any]) -> Seeded:
    """A committed project with its owner, annotators (API tokens) and tasks."""
    engine = make_engine(url)
    with Database(engine).session(write=True) as session:
        owner = users.create_user(session, "owner@example.com")
        project = projects.create(session, owner, name="loop", schema=CHOICE, policy=policy)
        tokens = []
        for i in range(n_annotators):
            user = users.create_user(session, f"a{i}@example.com")
            projects.add_member(session, project, user.email, Role.annotator)
            tokens.append(users.create_token(session, user)[1])
        records = [Record(i, {"data": {"n": i}}) for i in range(n_tasks)]
        import_tasks(session, project, records)
        seeded = Seeded(project.id, users.create_token(session, owner)[1], tokens)
    engine.dispose()
    return seeded


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """``quorum serve`` in its own process, as an operator runs it."""

    def __init__(self, url: str, log: Path, *, pool_size: int = 3) -> None:
        self.url, self.log, self.pool_size = url, log, pool_size
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Server":
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUORUM_")}
        env["QUORUM_POOL_SIZE"] = str(self.pool_size)
        command = [sys.executable, "-m", "quorum", "serve", "--db", self.url]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)], env=env, stdout=out, stderr=out
            )
        return self

    def wait_until_up(self, seconds: float = 60) -> None:
        assert self.process is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"server did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no goodbye."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    """Servers started by the test; all stopped at the end, whatever happened."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()
