"""The PostgreSQL hot path's statements stay cheap to send: psycopg converts a statement's
placeholders once and caches it only up to a length, past which every call converts again."""

import pytest
from psycopg import _queries as psycopg_queries

from quorum.db import engine  # noqa: F401  (sets the cache length the server runs with)
from quorum.domain import leases_pg

HOT = [
    "_lease",
    "_lease_plain",
    "_reclaim",
    "_read_assignment",
    "_write_known",
    "_write_after_read",
    "_skip",
]


@pytest.mark.parametrize("name", HOT)
@pytest.mark.parametrize("by_token", [True, False])
def test_hot_statements_are_converted_once(name: str, by_token: bool) -> None:
    sql, _ = leases_pg._compiled(getattr(leases_pg, name), by_token)
    assert len(sql) <= psycopg_queries.MAX_CACHED_STATEMENT_LENGTH
