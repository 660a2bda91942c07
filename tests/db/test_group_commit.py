"""Group commit on PostgreSQL: statements that arrive together share one durable transaction,
run in the order of their key, and a failure in a group reaches only the statement that caused it.
"""

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool
from tests.conftest import scratch_postgres_database

from quorum.db.engine import Statement
from quorum.db.group_commit import GroupCommit


@pytest.fixture
def conninfo(request: pytest.FixtureRequest) -> Iterator[str]:
    with scratch_postgres_database(request.config, "group") as url:
        conninfo = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute("CREATE TABLE marks (key int PRIMARY KEY, seq serial)")
        yield conninfo


async def _together(conninfo: str, statements: list[Statement]) -> list[Any]:
    """Each statement's rows or its error, all sent at once; and how many groups committed."""
    pool = AsyncConnectionPool(conninfo, min_size=2, kwargs={"autocommit": True}, open=False)
    await pool.open(wait=True)
    group = GroupCommit(pool)
    try:
        found = await asyncio.gather(
            *(group.execute(statement) for statement in statements), return_exceptions=True
        )
    finally:
        await pool.close()
    return [*found, group.groups]


def _mark(key: int) -> Statement:
    return Statement(
        "INSERT INTO marks (key) VALUES (%(key)s) RETURNING seq, txid_current()", {"key": key}, key
    )


def _marks(conninfo: str) -> list[tuple[int, int]]:
    with psycopg.connect(conninfo) as connection:
        return connection.execute("SELECT key, seq FROM marks ORDER BY key").fetchall()


def test_statements_sent_together_share_one_transaction_in_key_order(conninfo: str) -> None:
    *found, groups = asyncio.run(_together(conninfo, [_mark(key) for key in (5, 3, 1, 4, 2)]))
    assert groups == 1
    assert len({rows[0][1] for rows in found}) == 1  # one transaction id
    # committed, and written in the order of the keys, not of arrival
    assert [key for key, _ in sorted(_marks(conninfo), key=lambda mark: mark[1])] == [1, 2, 3, 4, 5]


def test_a_failing_statement_fails_alone_and_the_others_land_once(conninfo: str) -> None:
    failing = Statement("SELECT 1 / %(zero)s", {"zero": 0}, 3)
    statements = [_mark(1), _mark(2), failing, _mark(4)]
    first, second, error, fourth, groups = asyncio.run(_together(conninfo, statements))
    assert isinstance(error, psycopg.errors.DivisionByZero)
    assert groups == 0  # the group was rolled back; each statement then ran alone
    assert len({first[0][1], second[0][1], fourth[0][1]}) == 3
    assert [key for key, _ in _marks(conninfo)] == [1, 2, 4]


def test_a_unique_violation_reaches_the_flow_that_caused_it(conninfo: str) -> None:
    *found, _ = asyncio.run(_together(conninfo, [_mark(7), _mark(7)]))
    assert sum(isinstance(rows, psycopg.errors.UniqueViolation) for rows in found) == 1
    assert [key for key, _ in _marks(conninfo)] == [7]


def test_a_statement_without_rows_gets_an_empty_list(conninfo: str) -> None:
    update = Statement("UPDATE marks SET seq = seq WHERE key = %(key)s", {"key": 1}, 1)
    rows, groups = asyncio.run(_together(conninfo, [update]))
    assert rows == [] and groups == 1
