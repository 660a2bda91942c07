"""Races the server tests rarely provoke, run on the event loop over the real connection pools."""

import asyncio
from datetime import UTC, datetime, timedelta

from psycopg.types.json import Jsonb
from sqlalchemy import ColumnElement, func, select
from tests.assignment.conftest import seed

from quorum.db.engine import Database, Flow, Rows, make_engine, run_flow
from quorum.db.models import Assignment, AssignmentStatus, Project
from quorum.domain import assignment_audit, assignments, pg_statements, submits_pg, users
from quorum.domain.lease_rules import LeaseView, Submission
from quorum.domain.pg_statements import HINTS

ANSWER = {"label": "yes"}


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


async def _submit_at_once(
    database: Database, project_id: int, tokens: list[str], late: timedelta | None = None
) -> tuple[int, int]:
    """The first annotator labels a task (the process learns the project), then the others
    lease and submit all at once (``late``: that long after their leases expire). Returns how
    many labels were stored and in how many groups the durable statements were committed."""
    HINTS.projects.clear()  # this process's hints are of other databases' projects
    HINTS.schemas.clear()
    now = datetime.now(UTC)
    labelled = 0
    for wave in (tokens[:1], tokens[1:]):
        leases = await asyncio.gather(
            *(assignments.lease_by_token(database, project_id, token, now=now) for token in wave)
        )
        then = now if late is None else max(lease.expires_at for lease in leases if lease) + late
        views = await asyncio.gather(
            *(
                assignments.submit_by_token(
                    database, token, Submission(lease.assignment_id, ANSWER, 900, None), now=then
                )
                for token, lease in zip(wave, leases, strict=True)
                if lease is not None
            )
        )
        labelled += len(views)
    groups = database.group_commits
    await database.aclose()
    return labelled, groups


def test_submits_sent_at_once_share_a_commit(scratch_postgres: str) -> None:
    seeded = seed(scratch_postgres, 12, 12, {"overlap": 3})
    database = Database(make_engine(scratch_postgres))
    labelled, groups = asyncio.run(_submit_at_once(database, seeded.project_id, seeded.tokens))
    assert labelled == 12
    assert groups == 1  # the first submit read the project first; the other 11 went together
    labels = func.count().filter(Assignment.status == AssignmentStatus.submitted)
    assert _count_and_audit(scratch_postgres, seeded.project_id, labels) == 12


def test_late_submits_take_the_usual_path_and_still_land(scratch_postgres: str) -> None:
    seeded = seed(scratch_postgres, 6, 6, {"overlap": 3, "lease_seconds": 60})
    database = Database(make_engine(scratch_postgres))
    late = timedelta(seconds=5)
    labelled, _ = asyncio.run(_submit_at_once(database, seeded.project_id, seeded.tokens, late))
    assert labelled == 6
    labels = func.count().filter(Assignment.status == AssignmentStatus.submitted)
    assert _count_and_audit(scratch_postgres, seeded.project_id, labels) == 6


def test_the_grouped_submit_leaves_an_expired_lease_alone(scratch_postgres: str) -> None:
    """A group holds tasks while it runs; waiting for an expired lease, which a reclaim may
    hold while it waits for one of those tasks, could deadlock (``submits_pg``)."""
    seeded = seed(scratch_postgres, 1, 1, {"overlap": 1, "lease_seconds": 60})
    database = Database(make_engine(scratch_postgres))
    lease = asyncio.run(_lease(database, seeded.project_id, seeded.tokens[0]))
    who = pg_statements.Token(users.token_digest(seeded.tokens[0]))

    def write(at: datetime) -> Flow[Rows]:
        with database.session() as session:
            version = session.get_one(Project, seeded.project_id).updated_at
        rows = yield pg_statements.statement(
            submits_pg._write_known_bare,
            who,
            assignment_id=lease.assignment_id,
            project_id=seeded.project_id,
            version=version,
            now=at,
            duration_ms=900,
            key=None,
            request_hash=None,
            answers=Jsonb(ANSWER),
        )
        return rows

    with database.session(write=True) as session:
        expired = run_flow(session, lambda: write(lease.expires_at + timedelta(seconds=1)))
        live = run_flow(session, lambda: write(lease.expires_at - timedelta(seconds=1)))
        session.rollback()
    database.dispose()
    assert expired[0][1] is None  # nothing locked, nothing written
    assert live[0][1] == AssignmentStatus.leased.value and live[0][2] is not None


async def _lease(database: Database, project_id: int, token: str) -> LeaseView:
    lease = await assignments.lease_by_token(database, project_id, token)
    await database.aclose()
    assert lease is not None
    return lease
