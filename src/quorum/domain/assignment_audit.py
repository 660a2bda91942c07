"""The assignment engine's invariants, checked from the database (DESIGN §4).

Tests, the benchmark and operators ask the same question: does the data in the tables obey the
rules, whatever the server processes believed? Every check counts the rows that break one rule,
so a correct project answers all zeros.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, union_all
from sqlalchemy.orm import Session

from quorum.db.models import Annotation, Assignment, AssignmentStatus, Task, TaskStatus
from quorum.db.types import utcnow

Check = Callable[[int, datetime], Select[int]]


def _labels() -> Select[int, int]:
    return select(Annotation.task_id, func.count().label("n")).group_by(Annotation.task_id)


def _count(query: Select[*tuple[Any, ...]]) -> Select[int]:
    return select(func.count()).select_from(query.subquery())


def over_overlap(project_id: int, now: datetime) -> Select[int]:
    """Tasks with more submitted labels than their overlap."""
    labels = _labels().subquery()
    query = (
        select(Task.id)
        .join(labels, labels.c.task_id == Task.id)
        .where(Task.project_id == project_id, labels.c.n > Task.overlap)
    )
    return _count(query)


def _live(project_id: int, now: datetime) -> Select[int, int]:
    return (
        select(Assignment.task_id, func.count().label("n"))
        .where(
            Assignment.project_id == project_id,
            Assignment.status == AssignmentStatus.leased,
            Assignment.expires_at > now,
        )
        .group_by(Assignment.task_id)
    )


def over_booked(project_id: int, now: datetime) -> Select[int]:
    """Tasks whose labels plus live leases exceed their overlap."""
    labels, live = _labels().subquery(), _live(project_id, now).subquery()
    taken = func.coalesce(labels.c.n, 0) + func.coalesce(live.c.n, 0)
    query = (
        select(Task.id)
        .outerjoin(labels, labels.c.task_id == Task.id)
        .outerjoin(live, live.c.task_id == Task.id)
        .where(Task.project_id == project_id, taken > Task.overlap)
    )
    return _count(query)


def labelled_twice(project_id: int, now: datetime) -> Select[int]:
    """(task, annotator) pairs with more than one label."""
    query = (
        select(Annotation.task_id, Annotation.user_id)
        .where(Annotation.project_id == project_id)
        .group_by(Annotation.task_id, Annotation.user_id)
        .having(func.count() > 1)
    )
    return _count(query)


def assigned_twice(project_id: int, now: datetime) -> Select[int]:
    """(task, annotator) pairs handed out more than once (a unique constraint forbids it too)."""
    query = (
        select(Assignment.task_id, Assignment.user_id)
        .where(Assignment.project_id == project_id)
        .group_by(Assignment.task_id, Assignment.user_id)
        .having(func.count() > 1)
    )
    return _count(query)


def two_live_leases(project_id: int, now: datetime) -> Select[int]:
    """Annotators holding more than one live lease in the project."""
    query = (
        select(Assignment.user_id)
        .where(
            Assignment.project_id == project_id,
            Assignment.status == AssignmentStatus.leased,
            Assignment.expires_at > now,
        )
        .group_by(Assignment.user_id)
        .having(func.count() > 1)
    )
    return _count(query)


def counter_drift(project_id: int, now: datetime) -> Select[int]:
    """Tasks whose n_submitted / n_leased disagree with the rows they count."""
    labels = _labels().subquery()
    leased = (
        select(Assignment.task_id, func.count().label("n"))
        .where(Assignment.project_id == project_id, Assignment.status == AssignmentStatus.leased)
        .group_by(Assignment.task_id)
        .subquery()
    )
    query = (
        select(Task.id)
        .outerjoin(labels, labels.c.task_id == Task.id)
        .outerjoin(leased, leased.c.task_id == Task.id)
        .where(
            Task.project_id == project_id,
            or_(
                Task.n_submitted != func.coalesce(labels.c.n, 0),
                Task.n_leased != func.coalesce(leased.c.n, 0),
            ),
        )
    )
    return _count(query)


def status_drift(project_id: int, now: datetime) -> Select[int]:
    """Tasks whose status is not the one their counts imply."""
    complete = Task.n_submitted >= Task.overlap
    wrong = or_(
        and_(complete, Task.status != TaskStatus.complete),
        and_(~complete, Task.status != TaskStatus.open),
    )
    return _count(select(Task.id).where(Task.project_id == project_id, wrong))


def unmatched_labels(project_id: int, now: datetime) -> Select[int]:
    """Submitted assignments without exactly one label, and labels of unsubmitted assignments."""
    query = (
        select(Assignment.id)
        .outerjoin(Annotation, Annotation.assignment_id == Assignment.id)
        .where(
            Assignment.project_id == project_id,
            (Assignment.status == AssignmentStatus.submitted) != Annotation.id.is_not(None),
        )
    )
    return _count(query)


def copies_differ(project_id: int, now: datetime) -> Select[int]:
    """Assignments whose project is not their task's, and labels whose project, task or
    annotator is not their assignment's (copies without foreign keys of their own)."""
    assignments = (
        select(Assignment.id)
        .join(Task, Task.id == Assignment.task_id)
        .where(
            or_(Assignment.project_id == project_id, Task.project_id == project_id),
            Task.project_id != Assignment.project_id,
        )
    )
    labels = (
        select(Annotation.id)
        .join(Assignment, Assignment.id == Annotation.assignment_id)
        .where(
            or_(Annotation.project_id == project_id, Assignment.project_id == project_id),
            or_(
                Annotation.project_id != Assignment.project_id,
                Annotation.task_id != Assignment.task_id,
                Annotation.user_id != Assignment.user_id,
            ),
        )
    )
    both = union_all(assignments, labels).subquery()
    return select(func.count()).select_from(both)


CHECKS: dict[str, Check] = {
    "over_overlap": over_overlap,
    "over_booked": over_booked,
    "labelled_twice": labelled_twice,
    "assigned_twice": assigned_twice,
    "two_live_leases": two_live_leases,
    "counter_drift": counter_drift,
    "status_drift": status_drift,
    "unmatched_labels": unmatched_labels,
    "copies_differ": copies_differ,
}


def violations(session: Session, project_id: int, *, now: datetime | None = None) -> dict[str, int]:
    """How many rows break each invariant in ``project_id``; all zeros when the engine is right."""
    now = now or utcnow()
    return {
        name: int(session.scalar(check(project_id, now)) or 0) for name, check in CHECKS.items()
    }
