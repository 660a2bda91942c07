"""Leases: who labels which task, exactly once, under any number of concurrent annotators.

Rules (DESIGN §4, docs/assignment.md):
- a task is due to an annotator while its submitted labels plus live leases are below its
  overlap, and that annotator never held it (labelled, skipped or leased); among due tasks,
  higher ``priority`` first, then nearest completion, then import order;
- an annotator holding a live lease in a project gets that same lease back;
- a lease expires after the project's ``lease_seconds``; expired leases are reclaimed by the
  next lease in the project, so no background process is needed;
- a submit is accepted from the holder only; after expiry only while the slot is still free;
- an ``Idempotency-Key`` replays the first reply for the same body, refuses another body;
- every change of a task's counts sets its status in the same statement (``task_status``).

The rules live in ``lease_rules`` as SQL expressions. ``leases_pg`` and ``submits_pg`` run them
on PostgreSQL as one statement per step (the chosen task locked ``FOR NO KEY UPDATE SKIP
LOCKED``); ``leases_sqlite`` runs them as plain steps inside SQLite's ``BEGIN IMMEDIATE``. To
add a rule to the choice of the next task (qualification, hidden gold, tier reservation, paused
annotators, budgets), extend ``lease_rules.due_filter`` or ``lease_rules.LEASE_ORDER``.

Two doors lead in: functions taking a ``Session`` and a signed-in ``User`` (web pages, CLI,
tests; they return ORM objects and commit), and ``*_by_token`` coroutines for the REST API,
which authenticate inside the same statement and, on PostgreSQL, run on the event loop.

Locks are always taken assignment before task, and several tasks in id order, so transactions
cannot wait on each other in a cycle. A lease in a project with a budget first locks the
project's row (``budget.admit_lease``), before any task; nothing holding a task or an
assignment lock waits for a project row.

Money: ``budget.admit_lease`` runs before a lease is chosen; ``ledger.record_label`` after a
label is stored (docs/payments.md).
"""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from quorum.db.engine import Contention, Database, Flow, run_flow
from quorum.db.models import Annotation, Assignment, Project, Task, User
from quorum.db.types import utcnow
from quorum.domain import (
    budget,
    leases_pg,
    leases_sqlite,
    ledger,
    pg_statements,
    policies,
    projects,
    qualification,
    submits_pg,
    users,
)
from quorum.domain.errors import Contended, Forbidden, NotFound
from quorum.domain.lease_rules import (
    AssignmentView,
    Grade,
    LeaseView,
    Refused,
    Submission,
    SubmissionView,
    request_hash,
)

__all__ = [
    "AssignmentView",
    "Lease",
    "LeaseView",
    "Submission",
    "SubmissionView",
    "get",
    "lease",
    "lease_by_token",
    "request_hash",
    "skip",
    "skip_by_token",
    "submit",
    "submit_by_token",
]

T = TypeVar("T")
NOT_A_MEMBER = "only members of the project label it"


@dataclass(frozen=True)
class Lease:
    assignment: Assignment
    task: Task


def get(session: Session, assignment_id: int, *, for_update: bool = False) -> Assignment:
    query = select(Assignment).where(Assignment.id == assignment_id)
    if for_update:
        query = query.with_for_update()
    assignment = session.scalar(query)
    if assignment is None:
        raise NotFound(f"no assignment {assignment_id}")
    return assignment


def _on_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _run(session: Session, start: Callable[[], Flow[T]]) -> T:
    try:
        return run_flow(session, start)
    except Contention as error:
        raise Contended(str(error)) from None


def _fresh(session: Session, model: type[T], key: int) -> T:
    found = session.get(model, key, populate_existing=True)
    assert found is not None, "a row written in this transaction cannot disappear"
    return found


# --- for a signed-in user --------------------------------------------------------------------


def lease(
    session: Session, project: Project, user: User, *, now: datetime | None = None
) -> Lease | None:
    """Lease the next due task of ``project`` to ``user``, or None when nothing is due to them."""
    view = lease_view(session, project.id, user.id, now or utcnow())
    session.commit()
    if view is None:
        return None
    return Lease(
        _fresh(session, Assignment, view.assignment_id), _fresh(session, Task, view.task_id)
    )


def lease_view(session: Session, project_id: int, user_id: int, now: datetime) -> LeaseView | None:
    """``lease`` without the commit and the ORM objects."""
    if not budget.admit_lease(session, project_id, user_id, now):
        return None
    found = _lease_once(session, project_id, user_id, now)
    if isinstance(found, Grade):
        # The caller has held every qualification task: grade them, then ask again (a pass
        # opens the real work, a failure leaves nothing due).
        qualification.grade(session, _fresh(session, Project, project_id), user_id, now=now)
        found = _lease_once(session, project_id, user_id, now)
    if isinstance(found, Refused):
        raise Forbidden(NOT_A_MEMBER)
    return None if isinstance(found, Grade) else found


def _lease_once(
    session: Session, project_id: int, user_id: int, now: datetime
) -> LeaseView | Refused | Grade | None:
    if _on_sqlite(session):
        return leases_sqlite.lease(session, project_id, user_id, now)
    who = pg_statements.UserId(user_id)
    return _run(session, lambda: leases_pg.lease(project_id, who, now, admitted=True))


def submit(
    session: Session,
    assignment_id: int,
    user: User,
    answers: Any,
    *,
    duration_ms: int | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> Annotation:
    """Record the holder's answers for a leased task, exactly once.

    With an idempotency ``key``, a retry with the same body returns the first annotation and a
    retry with another body is refused.
    """
    submission = Submission(assignment_id, answers, duration_ms, key)
    view = submit_view(session, user.id, submission, now or utcnow())
    session.commit()
    return _fresh(session, Annotation, view.id)


def submit_view(
    session: Session, user_id: int, submission: Submission, now: datetime
) -> SubmissionView:
    admitted = budget.admit_late_label(session, submission.assignment_id, user_id, now)
    if _on_sqlite(session):
        found = leases_sqlite.submit(session, user_id, submission, now)
    else:
        who = pg_statements.UserId(user_id)
        found = _run(
            session,
            lambda: submits_pg.submit(
                submission.assignment_id, who, submission, now, admitted=admitted
            ),
        )
    if isinstance(found, Refused):
        _explain_refused_assignment(session, submission.assignment_id, user_id)
    assert not isinstance(found, Refused)
    # A replay is the first submit's reply: it earned then, or never (ledger module doc).
    ledger.record_label(session, found.id, now=now, submitted=not found.replay)
    return found


def skip(
    session: Session, assignment_id: int, user: User, *, now: datetime | None = None
) -> Assignment:
    """Give the task back; the annotator will not be offered it again."""
    skip_view(session, assignment_id, user.id, now or utcnow())
    session.commit()
    return _fresh(session, Assignment, assignment_id)


def skip_view(session: Session, assignment_id: int, user_id: int, now: datetime) -> AssignmentView:
    if _on_sqlite(session):
        found = leases_sqlite.skip(session, assignment_id, user_id, now)
    else:
        who = pg_statements.UserId(user_id)
        found = _run(session, lambda: leases_pg.skip(assignment_id, who, now))
    if isinstance(found, Refused):
        _explain_refused_assignment(session, assignment_id, user_id)
    assert not isinstance(found, Refused)
    return found


def _explain_refused_assignment(session: Session, assignment_id: int, user_id: int) -> None:
    """Raise why an assignment refused this user: it is not theirs (or does not exist: the
    same 404, so that ids of other people's leases tell nothing), or it changed meanwhile."""
    assignment = session.get(Assignment, assignment_id)
    if assignment is None or not policies.can_submit(assignment)(_fresh(session, User, user_id)):
        raise NotFound(f"no assignment {assignment_id} of yours")
    raise Contended(f"assignment {assignment_id} changed meanwhile; try again")


# --- for the REST API, by API token -----------------------------------------------------------
#
# NOTE: on PostgreSQL these authenticate inside the statement that does the work and run on
# the event loop over a psycopg pool (one round trip for a lease, two for a submit). Anything
# unusual (a bad token, not a member, not the holder) comes back REFUSED, and the ordinary
# checks then run, off the hot path, to raise the error every other endpoint would.


async def lease_by_token(
    database: Database, project_id: int, token: str, *, now: datetime | None = None
) -> LeaseView | None:
    """``lease`` for the caller of an API request."""
    now = now or utcnow()
    if database.is_sqlite:
        return await _in_thread(database, _lease_in_session, project_id, token, now, lazy=True)
    who = pg_statements.Token(users.token_digest(token))
    found = await _run_async(database, lambda: leases_pg.lease(project_id, who, now), durable=False)
    if isinstance(found, Refused | Grade):
        return await _in_thread(database, _lease_in_session, project_id, token, now)
    return found


def _lease_in_session(
    session: Session, project_id: int, token: str, now: datetime
) -> LeaseView | None:
    user = _member_by_token(session, project_id, token)
    return lease_view(session, project_id, user.id, now)


def _member_by_token(session: Session, project_id: int, token: str) -> User:
    """The token's user, if they may label in the project; else the error to report."""
    user = users.authenticate_token(session, token)
    seen = projects.access(session, user, project_id)
    policies.authorize(user, policies.can_annotate(seen.role), NOT_A_MEMBER)
    return user


async def submit_by_token(
    database: Database, token: str, submission: Submission, *, now: datetime | None = None
) -> SubmissionView:
    """``submit`` for the caller of an API request."""
    now = now or utcnow()
    if database.is_sqlite:
        return await _in_thread(database, _submit_in_session, token, submission, now)
    who = pg_statements.Token(users.token_digest(token))
    found = await _run_async(
        database, lambda: submits_pg.submit(submission.assignment_id, who, submission, now)
    )
    if isinstance(found, Refused):
        return await _in_thread(database, _submit_in_session, token, submission, now)
    return found


def _submit_in_session(
    session: Session, token: str, submission: Submission, now: datetime
) -> SubmissionView:
    user = users.authenticate_token(session, token)
    return submit_view(session, user.id, submission, now)


async def skip_by_token(
    database: Database, assignment_id: int, token: str, *, now: datetime | None = None
) -> AssignmentView:
    """``skip`` for the caller of an API request."""
    now = now or utcnow()
    if database.is_sqlite:
        return await _in_thread(database, _skip_in_session, assignment_id, token, now)
    who = pg_statements.Token(users.token_digest(token))
    found = await _run_async(database, lambda: leases_pg.skip(assignment_id, who, now))
    if isinstance(found, Refused):
        return await _in_thread(database, _skip_in_session, assignment_id, token, now)
    return found


def _skip_in_session(
    session: Session, assignment_id: int, token: str, now: datetime
) -> AssignmentView:
    user = users.authenticate_token(session, token)
    return skip_view(session, assignment_id, user.id, now)


async def _run_async(
    database: Database, start: Callable[[], Flow[T]], *, durable: bool = True
) -> T:
    try:
        return await database.run(start, durable=durable)
    except Contention as error:
        raise Contended(str(error)) from None


# NOTE: one thread runs this process's writes of the annotation loop (on SQLite, and the rare
# slow paths on PostgreSQL). SQLite runs one writer at a time anyway; spreading the calls over
# the 40 threads of the default pool only made them fight for the GIL (measured: 7 ms of CPU
# per label with the pool).
_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quorum-loop")


async def _in_thread(
    database: Database, work: Callable[..., T], *args: Any, lazy: bool = False
) -> T:
    """Run ``work(session, *args)`` in a write transaction on the writer thread, and commit
    (``lazy``: without an fsync on SQLite, for a lease)."""

    def run() -> T:
        with database.session(write=True, lazy_commit=lazy) as session:
            result = work(session, *args)
            session.commit()
            return result

    return await asyncio.get_running_loop().run_in_executor(_WRITER, run)
