"""One function decides a task's status; overlap changes keep leases within the new overlap."""

from collections import Counter
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from quorum.db.models import Assignment, AssignmentStatus, Task, TaskStatus
from quorum.db.types import utcnow


def status_after(
    n_submitted: ColumnElement[int] | InstrumentedAttribute[int],
    overlap: ColumnElement[int] | InstrumentedAttribute[int] | None = None,
) -> ColumnElement[str]:
    """The status a task has once it holds ``n_submitted`` labels: the one rule for status.

    Every statement that changes a task's counters or overlap sets ``status`` with this
    expression in the same UPDATE (lease, submit, skip, expiry, overlap change), so the status
    cannot drift from the counts. A task is complete once it has as many labels as its overlap
    asks for; the quality loop raises a task's overlap when its answer is still unsure. An
    UPDATE that also changes the overlap passes the new one (its right-hand sides see the old).
    """
    needed = Task.overlap if overlap is None else overlap
    return case((n_submitted >= needed, TaskStatus.complete.value), else_=TaskStatus.open.value)


def recompute_task_status(
    session: Session, *, task_ids: Collection[int] | None = None, project_id: int | None = None
) -> None:
    """Set ``status`` from the counts for the given tasks, or for every task of a project."""
    if task_ids is None and project_id is None:
        raise ValueError("name the tasks or the project whose statuses to recompute")
    statement = (
        update(Task)
        .values(status=status_after(Task.n_submitted))
        .execution_options(synchronize_session=False)
    )
    if task_ids is not None:
        statement = statement.where(Task.id.in_(task_ids))
    if project_id is not None:
        statement = statement.where(Task.project_id == project_id)
    session.execute(statement)


def lock_live_leases(session: Session, project_id: int) -> None:
    """Lock a project's leases before its tasks change overlap (PostgreSQL; SQLite is serial).

    NOTE: the annotation loop locks an assignment before its task; an overlap change, which
    locks every task of the project, takes the leases first too, so the two cannot deadlock.
    """
    query = (
        select(Assignment.id)
        .where(Assignment.project_id == project_id, Assignment.status == AssignmentStatus.leased)
        .order_by(Assignment.id)
        .with_for_update()
    )
    session.execute(query)


def release_leases_beyond_overlap(
    session: Session, project_id: int, *, now: datetime | None = None
) -> int:
    """Expire the newest leases of tasks whose overlap fell below labels plus leases.

    Their holders may still submit late while a slot is free, like any expired lease.
    Returns how many leases were released.
    """
    now = now or utcnow()
    newest_first = func.row_number().over(
        partition_by=Assignment.task_id, order_by=Assignment.id.desc()
    )
    ranked = (
        select(Assignment.id, Assignment.task_id, newest_first.label("rank"))
        .where(Assignment.project_id == project_id, Assignment.status == AssignmentStatus.leased)
        .subquery()
    )
    excess = (
        select(ranked.c.id)
        .join(Task, Task.id == ranked.c.task_id)
        .where(ranked.c.rank <= Task.n_submitted + Task.n_leased - Task.overlap)
    )
    return _expire(session, Assignment.id.in_(excess), now)


def free_leases(session: Session, project_id: int, user_id: int, now: datetime) -> int:
    """Expire the annotator's live leases in the project and give their slots back."""
    mine = and_(
        Assignment.project_id == project_id,
        Assignment.user_id == user_id,
        Assignment.status == AssignmentStatus.leased,
    )
    return _expire(session, mine, now)


def _expire(session: Session, which: ColumnElement[bool], now: datetime) -> int:
    """Expire the assignments ``which`` selects and give their tasks the slots back; how many.

    NOTE: assignments first, then their tasks in id order: the lock order of the lease engine
    (docs/assignment.md).
    """
    freed = Counter(
        session.scalars(
            update(Assignment)
            .where(which)
            .values(status=AssignmentStatus.expired, finished_at=now)
            .returning(Assignment.task_id)
            .execution_options(synchronize_session=False)
        )
    )
    for task_id in sorted(freed):
        session.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(n_leased=Task.n_leased - freed[task_id], status=status_after(Task.n_submitted))
            .execution_options(synchronize_session=False)
        )
    return sum(freed.values())
