"""Shared fixtures: every database test runs on SQLite and, when QUORUM_TEST_POSTGRES_URL is set,
on PostgreSQL too; each test runs inside a transaction that is rolled back afterwards."""

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.orm import Session

from quorum.app import create_app
from quorum.config import Settings
from quorum.db.engine import Database, make_engine, normalize_url
from quorum.db.migrate import upgrade
from quorum.db.models import Project, Role, User
from quorum.domain import leases_sqlite, projects, users
from quorum.domain.tasks import Record, import_tasks

POSTGRES_URL = os.environ.get("QUORUM_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]

CHOICE_SCHEMA = {"questions": [{"name": "label", "kind": "choice", "options": ["yes", "no"]}]}


def worker_database(url: str, worker: str) -> str:
    """Each pytest-xdist worker gets its own PostgreSQL database, created next to the given one."""
    if worker == "master":
        return url
    base = make_url(normalize_url(url))
    name = f"{base.database}_{worker}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        )
        if exists.scalar() is None:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def reset_postgres(url: str) -> Engine:
    """A migrated, empty PostgreSQL database (the URL must name a database meant for tests)."""
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    return engine


@contextmanager
def scratch_postgres_database(config: pytest.Config, label: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database named after the test one, ``label`` and the xdist
    worker, for tests whose commits must be real; dropped afterwards. Skips without PostgreSQL."""
    if POSTGRES_URL is None:
        pytest.skip("QUORUM_TEST_POSTGRES_URL is not set")
    base = make_url(normalize_url(POSTGRES_URL))
    worker = getattr(config, "workerinput", {}).get("workerid", "master")
    name = f"{base.database}_{label}_{worker}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "quorum.db"
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
    else:
        assert POSTGRES_URL is not None
        worker = getattr(request.config, "workerinput", {}).get("workerid", "master")
        engine = reset_postgres(worker_database(POSTGRES_URL, worker))
    yield engine
    engine.dispose()


@pytest.fixture
def database(engine: Engine) -> Iterator[Database]:
    """A Database whose every session joins one outer transaction, rolled back after the test."""
    connection = engine.connect()
    outer = connection.begin()
    yield Database(engine, connection)
    outer.rollback()
    connection.close()


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    with database.session(write=True) as session:
        yield session


@pytest.fixture
def seeded_coins(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """The hidden-gold coin, seeded: Python's on SQLite, the connection's random() on
    PostgreSQL (the test's statements all run on its one connection)."""
    monkeypatch.setattr(leases_sqlite, "_COIN", random.Random(8))
    if "database" not in request.fixturenames:
        return  # a test without the shared database (pure functions, its own files)
    database: Database = request.getfixturevalue("database")
    if not database.is_sqlite:
        assert database.connection is not None
        database.connection.execute(text("SELECT setseed(0.08)"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path}/unused.db", environment="test")


@pytest.fixture
def app(settings: Settings, database: Database) -> FastAPI:
    return create_app(settings, database=database)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@dataclass
class Person:
    user: User
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Factory:
    """Makes users, projects and tasks straight through the domain layer."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.count = 0

    def person(self, name: str = "", *, admin: bool = False, tier: int = 1) -> Person:
        self.count += 1
        email = f"{name or 'user'}{self.count}@example.com"
        user = users.create_user(
            self.session, email, password="password123", is_admin=admin, tier=tier
        )
        _, token = users.create_token(self.session, user, "test")
        return Person(user, token)

    def project(
        self,
        owner: Person,
        schema: dict[str, Any] | None = None,
        policy: dict[str, Any] | None = None,
        *,
        members: dict[Role, list[Person]] | None = None,
    ) -> Project:
        project = projects.create(
            self.session,
            owner.user,
            name="test project",
            schema=schema or CHOICE_SCHEMA,
            policy=policy,
        )
        for role, people in (members or {}).items():
            for person in people:
                projects.add_member(self.session, project, person.user.email, role)
        return project

    def tasks(self, project: Project, items: list[dict[str, Any]]) -> None:
        records = [Record(i, item) for i, item in enumerate(items, start=1)]
        import_tasks(self.session, project, records)


@pytest.fixture
def make(session: Session) -> Factory:
    return Factory(session)
