"""The PostgreSQL hot path's statements stay cheap to send: psycopg converts a statement's
placeholders once and caches it only up to a length, past which every call converts again."""

from types import ModuleType

import pytest
from psycopg import _queries as psycopg_queries

from quorum.db import engine  # noqa: F401  (sets the cache length the server runs with)
from quorum.domain import leases_pg, pg_statements, submits_pg

HOT = [
    (leases_pg, "_lease"),
    (leases_pg, "_lease_plain"),
    (leases_pg, "_reclaim"),
    (leases_pg, "_skip"),
    (submits_pg, "_read_assignment"),
    (submits_pg, "_write_known"),
    (submits_pg, "_write_known_bare"),
    (submits_pg, "_write_after_read"),
]


@pytest.mark.parametrize(("module", "name"), HOT)
@pytest.mark.parametrize("by_token", [True, False])
def test_hot_statements_are_converted_once(module: ModuleType, name: str, by_token: bool) -> None:
    sql, _ = pg_statements.compiled(getattr(module, name), by_token)
    assert len(sql) <= psycopg_queries.MAX_CACHED_STATEMENT_LENGTH


@pytest.mark.parametrize("name", ["_lease", "_lease_plain"])
@pytest.mark.parametrize("by_token", [True, False])
def test_a_lease_looks_for_expired_leases_once(name: str, by_token: bool) -> None:
    # Each look reads the project's live leases; the picks and the reply share one.
    sql, _ = pg_statements.compiled(getattr(leases_pg, name), by_token)
    assert sql.count("assignments.expires_at <=") == 1
