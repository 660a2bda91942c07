"""Engines and sessions for SQLite (embedded default) and PostgreSQL (production)."""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session

from quorum.db.types import dumps_json


def normalize_url(url: str) -> str:
    """Let users write ``postgresql://`` and get psycopg 3, which is what we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, busy_timeout_ms: int = 30_000, pool_size: int = 10) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, busy_timeout_ms)
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        json_serializer=dumps_json,
        json_deserializer=orjson.loads,
    )


def _sqlite_engine(url: str, busy_timeout_ms: int) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
        json_serializer=dumps_json,
        json_deserializer=orjson.loads,
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: sqlite3.Connection, _: object) -> None:
        # NOTE: pysqlite delays BEGIN until the first write, so a SAVEPOINT becomes the outer
        # transaction and its RELEASE commits: rollbacks (and test isolation) silently fail.
        dbapi_connection.isolation_level = None  # the "begin" listener emits BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # FULL: a commit that returned is on disk, so a 2xx survives a crash of the machine too.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # NOTE: a deferred transaction that reads and then writes cannot wait for the lock;
        # SQLite fails it at once with SQLITE_BUSY. Writers therefore begin IMMEDIATE and
        # queue on busy_timeout instead.
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


@dataclass(frozen=True)
class Database:
    """One engine and the two kinds of session the domain uses.

    With ``connection`` set (tests), every session joins that connection's open transaction
    through a SAVEPOINT, so a test's writes roll back with it.
    """

    engine: Engine
    connection: Connection | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def session(self, *, write: bool = False) -> Session:
        if self.connection is not None:
            return Session(
                bind=self.connection,
                join_transaction_mode="create_savepoint",
                expire_on_commit=False,
            )
        bind = self.engine.execution_options(sqlite_begin="IMMEDIATE") if write else self.engine
        return Session(bind=bind, expire_on_commit=False)

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on error."""
        with self.session(write=write) as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
