"""Races the server tests rarely provoke, run on the event loop over the real connection pools."""

import asyncio

from sqlalchemy import ColumnElement, func, select
from tests.assignment.conftest import seed

from quorum.db.engine import Database, make_engine
from quorum.db.models import Assignment, AssignmentStatus
from quorum.domain import assignment_audit, assignments


def _count_and_audit(url: str, project_id: int, what: ColumnElement[int]) -> int:
    """``what`` counted over the project's assignments, once every invariant is checked."""
    engine = make_engine(url)
    with Database(engine).session() as session:
        violations = assignment_audit.violations(session, project_id)
        count = session.scalar(select(what).where(Assignment.project_id == project_id))
    engine.dispose()
    assert not any(violations.values()), violations
    return int(count or 0)


async def _at_once(database: Database, project_id: int, tokens: list[str]) -> list[int]:
    """Leases for all ``tokens`` at once (the pools open all their connections first)."""
    found = await asyncio.gather(
        *(assignments.lease_by_token(database, project_id, token) for token in tokens)
    )
    await database.aclose()
    return [lease.assignment_id for lease in found if lease is not None]


def test_one_annotator_asking_many_times_at_once_holds_one_lease(scratch_postgres: str) -> None:
    seeded = seed(scratch_postgres, 2, 20, {"overlap": 1})
    database = Database(make_engine(scratch_postgres))
    assert database.runs_async
    # NOTE: the unique index of leased assignments makes all but one of these inserts fail;
    # each loser runs its lease again and gets the winner's lease back.
    leases = asyncio.run(_at_once(database, seeded.project_id, [seeded.tokens[0]] * 12))
    assert len(leases) == 12 and len(set(leases)) == 1
    leased = func.count().filter(Assignment.status == AssignmentStatus.leased)
    assert _count_and_audit(scratch_postgres, seeded.project_id, leased) == 1


def test_many_annotators_at_once_share_no_task_of_overlap_one(scratch_postgres: str) -> None:
    seeded = seed(scratch_postgres, 16, 16, {"overlap": 1})
    database = Database(make_engine(scratch_postgres))
    leases = asyncio.run(_at_once(database, seeded.project_id, seeded.tokens))
    assert len(leases) == 16
    tasks = func.count(func.distinct(Assignment.task_id))
    # SKIP LOCKED spread them over all the tasks, one each
    assert _count_and_audit(scratch_postgres, seeded.project_id, tasks) == 16
