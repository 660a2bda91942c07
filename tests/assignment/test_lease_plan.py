"""A lease by API token costs the same in a project of 3 members as in one of 300: the
statement finds the token first and then the membership by its key, whatever the planner
would guess about the team (PostgreSQL only: SQLite's path is the session's)."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session
from tests.conftest import Factory

from quorum.db.models import Role
from quorum.domain import leases_pg, pg_statements, users


def _caller_buffers(plan: dict[str, Any]) -> int:
    """Buffers read by the plan's ``me`` CTE (the caller, their membership and the project;
    a node's counts include those of the nodes under it)."""
    for node in plan.get("Plans", []):
        if node.get("Subplan Name") == "CTE me":
            return int(node["Shared Hit Blocks"]) + int(node["Shared Read Blocks"])
        found = _caller_buffers(node)
        if found:
            return found
    return 0


def test_the_caller_is_found_by_token_however_large_the_team(
    session: Session, make: Factory
) -> None:
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("the statement is PostgreSQL's")
    owner = make.person("owner")
    make.project(owner, members={Role.annotator: [make.person("early")]})
    # Statistics taken before the big project exists, as on a real database: its id is past
    # their histogram, so the planner guesses it has one member.
    session.connection().exec_driver_sql("ANALYZE memberships")
    members = [make.person(f"a{i}") for i in range(60)]
    project = make.project(owner, members={Role.annotator: members})
    make.tasks(project, [{"data": {"n": i}} for i in range(5)])
    sql, _ = pg_statements.compiled(leases_pg._lease_plain, True)
    params = {
        "token_hash": users.token_digest(members[-1].token),
        "project_id": project.id,
        "now": datetime.now(UTC),
        "check_expired": True,
        "admitted": False,
    }
    explain = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql
    result = session.connection().exec_driver_sql(explain, params).scalar_one()
    plan = (json.loads(result) if isinstance(result, str) else result)[0]["Plan"]
    # token, user, membership, project: a few index pages each, not a walk over the members
    assert 0 < _caller_buffers(plan) <= 30
