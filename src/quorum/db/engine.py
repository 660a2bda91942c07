"""Engines and sessions for SQLite (embedded default) and PostgreSQL (production).

Besides SQLAlchemy sessions, this module runs *flows*: a domain operation written as a generator
that yields raw SQL statements and receives their rows (``quorum.domain.leases_pg``,
``submits_pg``). The same flow runs synchronously inside a session (web pages, the CLI, tests),
or on the event loop over a psycopg connection pool (the annotation API on PostgreSQL), so the
hot path pays neither for threads nor for an ORM, and there is still one implementation of each
rule.
"""

import asyncio
import sqlite3
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import orjson
import psycopg
from psycopg import _queries as psycopg_queries
from psycopg.pq import ExecStatus
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.orm import Session

from quorum.db.types import dumps_json

# NOTE: psycopg caches the conversion of a query's placeholders only for texts of up to 4,096
# characters. The PostgreSQL lease statement (quorum.domain.leases_pg) is longer, and converting
# it again on every call took about 0.2-0.4 ms of the server's CPU per lease. The cache is keyed
# by the text, and the hot path has a handful of texts. (A psycopg without this setting simply
# ignores it.)
psycopg_queries.MAX_CACHED_STATEMENT_LENGTH = max(
    getattr(psycopg_queries, "MAX_CACHED_STATEMENT_LENGTH", 0), 32_768
)

T = TypeVar("T")
TUPLES_OK = ExecStatus.TUPLES_OK
Rows = list[tuple[Any, ...]]
# How often a flow is run again after losing a race on a unique key.
FLOW_ATTEMPTS = 3


@dataclass(frozen=True)
class Statement:
    """One raw SQL statement of a flow, in psycopg's ``%(name)s`` style, with its parameters."""

    sql: str
    params: Mapping[str, Any]


Flow = Generator[Statement, Rows, T]


class Contention(Exception):
    """A flow kept losing races on a unique key; the caller may try again later."""


SUPPORTED = "sqlite:///PATH or postgresql://USER@HOST/DATABASE"


def normalize_url(url: str) -> str:
    """Let users write ``postgresql://`` and get psycopg 3, which is what we ship; anything
    but SQLite and PostgreSQL is a ValueError naming the two."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"{url!r} is not a database URL: use {SUPPORTED}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        where = parsed.render_as_string(hide_password=True)
        raise ValueError(f"{where}: Quorum runs on SQLite or PostgreSQL: use {SUPPORTED}")
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
        options = connection.get_execution_options()
        # A transaction whose loss in a crash is harmless (a lease) may commit without an
        # fsync: in WAL mode the next FULL commit syncs its pages too. Set outside the
        # transaction (SQLite refuses it inside) and only when it changes.
        wanted = "NORMAL" if options.get("sqlite_lazy_commit") else "FULL"
        info = connection.connection.info
        if info.get("synchronous", "FULL") != wanted:
            connection.exec_driver_sql(f"PRAGMA synchronous={wanted}")
            info["synchronous"] = wanted
        connection.exec_driver_sql(f"BEGIN {options.get('sqlite_begin', 'DEFERRED')}")

    return engine


def run_flow(session: Session, start: Callable[[], Flow[T]]) -> T:
    """Run a flow on the session's connection, each attempt inside a SAVEPOINT.

    The caller commits. A unique key taken by a concurrent transaction aborts the statement;
    the flow then starts again from the top (its statements are safe to repeat).
    """
    for _ in range(FLOW_ATTEMPTS):
        try:
            with session.begin_nested():
                return _drive(session.connection(), start())
        except IntegrityError as error:
            if not isinstance(error.orig, psycopg.errors.UniqueViolation):
                raise
    raise Contention("the request kept colliding with concurrent ones; try again")


def _drive(connection: Connection, flow: Flow[T]) -> T:
    try:
        statement = next(flow)
        while True:
            result = connection.exec_driver_sql(statement.sql, dict(statement.params))
            rows = [tuple(row) for row in result] if result.returns_rows else []
            statement = flow.send(rows)
    except StopIteration as stop:
        value: T = stop.value
        return value


async def run_flow_async(pool: AsyncConnectionPool, start: Callable[[], Flow[T]]) -> T:
    """Run a flow on an autocommit connection of ``pool``: each statement is a transaction."""
    for _ in range(FLOW_ATTEMPTS):
        try:
            async with pool.connection() as connection:
                return await _drive_async(connection, start())
        except psycopg.errors.UniqueViolation:
            continue
    raise Contention("the request kept colliding with concurrent ones; try again")


async def _drive_async(connection: psycopg.AsyncConnection[Any], flow: Flow[T]) -> T:
    # NOTE: one cursor for the whole flow, and rows told from no rows by the result status:
    # a new cursor per statement and ``cursor.description`` cost more than a statement's wait.
    cursor = connection.cursor()
    try:
        statement = next(flow)
        while True:
            await cursor.execute(statement.sql, statement.params)
            result = cursor.pgresult
            has_rows = result is not None and result.status == TUPLES_OK
            statement = flow.send(await cursor.fetchall() if has_rows else [])
    except StopIteration as stop:
        value: T = stop.value
        return value
    finally:
        await cursor.close()


def _psycopg_conninfo(engine: Engine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _configure(connection: psycopg.AsyncConnection[Any]) -> None:
    set_json_loads(orjson.loads, connection)
    set_json_dumps(dumps_json, connection)


@dataclass(frozen=True)
class Database:
    """One engine and the two kinds of session the domain uses.

    With ``connection`` set (tests), every session joins that connection's open transaction
    through a SAVEPOINT, so a test's writes roll back with it.

    On PostgreSQL outside tests, ``run`` executes flows over two psycopg pools opened on first
    use: one commits durably, the other with ``synchronous_commit = off`` for work whose loss
    in a database crash is harmless (a lease: its holder asks again).
    """

    engine: Engine
    connection: Connection | None = None
    _pools: dict[bool, AsyncConnectionPool] = field(default_factory=dict, repr=False, compare=False)
    _opening: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False, compare=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def session(self, *, write: bool = False, lazy_commit: bool = False) -> Session:
        """``lazy_commit``: on SQLite, commit without an fsync (for work whose loss in a crash of
        the machine is harmless, as a lease; PostgreSQL's lease pool does the same)."""
        if self.connection is not None:
            return Session(
                bind=self.connection,
                join_transaction_mode="create_savepoint",
                expire_on_commit=False,
            )
        if not write:
            return Session(bind=self.engine, expire_on_commit=False)
        bind = self.engine.execution_options(
            sqlite_begin="IMMEDIATE", sqlite_lazy_commit=lazy_commit
        )
        return Session(bind=bind, expire_on_commit=False)

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on error."""
        with self.session(write=write) as session, session.begin():
            yield session

    @property
    def runs_async(self) -> bool:
        """Whether ``run`` executes flows on the event loop (PostgreSQL outside tests)."""
        return self.connection is None and self.engine.dialect.name == "postgresql"

    async def run(self, start: Callable[[], Flow[T]], *, durable: bool = True) -> T:
        """Run a PostgreSQL flow: on a pool when ``runs_async``, else in a worker thread."""
        if not self.runs_async:
            return await anyio.to_thread.run_sync(self._run_in_session, start)
        return await run_flow_async(await self._pool(durable), start)

    def _run_in_session(self, start: Callable[[], Flow[T]]) -> T:
        with self.session(write=True) as session:
            result = run_flow(session, start)
            session.commit()
            return result

    async def _pool(self, durable: bool) -> AsyncConnectionPool:
        pool = self._pools.get(durable)
        if pool is not None:
            return pool
        async with self._opening:
            if durable not in self._pools:
                self._pools[durable] = await self._open_pool(durable)
        return self._pools[durable]

    async def _open_pool(self, durable: bool) -> AsyncConnectionPool:
        settings: dict[str, Any] = {"autocommit": True}
        if not durable:
            settings["options"] = "-c synchronous_commit=off"
        size = getattr(self.engine.pool, "size", lambda: 10)()
        pool: AsyncConnectionPool = AsyncConnectionPool(
            _psycopg_conninfo(self.engine),
            min_size=max(2, size),  # all open from the start: no ramp-up under load
            kwargs=settings,
            configure=_configure,
            open=False,
            name="durable" if durable else "leases",
        )
        await pool.open(wait=True)
        return pool

    async def aclose(self) -> None:
        """Close the pools and the engine (from the app's lifespan)."""
        for pool in self._pools.values():
            await pool.close()
        self._pools.clear()
        self.dispose()

    def dispose(self) -> None:
        self.engine.dispose()
