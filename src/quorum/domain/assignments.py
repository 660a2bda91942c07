"""Leases: who labels which task, exactly once, under any number of concurrent annotators.

Rules (DESIGN §4):
- a task is due to an annotator while its submitted labels plus live leases are below its
  overlap, and that annotator never held it before;
- an annotator holding a live lease in a project gets that same lease back;
- an expired lease frees its slot: expired leases are reclaimed by the next call to ``lease``,
  so no background process is needed.

Locks are always taken in the order membership → assignment → task, so transactions cannot
wait on each other in a cycle. On PostgreSQL the task is chosen with ``FOR UPDATE SKIP LOCKED``;
on SQLite the whole transaction runs under ``BEGIN IMMEDIATE``.
"""

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from quorum.db.models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    IdempotencyRecord,
    Membership,
    Project,
    Task,
    TaskStatus,
    User,
)
from quorum.db.types import canonical_json, utcnow
from quorum.domain import policies
from quorum.domain.errors import Conflict, Invalid, NotFound
from quorum.domain.projects import policy_of, schema_of
from quorum.domain.questions import check_answers
from quorum.domain.task_status import recompute_task_status
from quorum.domain.text import refuse_nul

RECLAIM_BATCH = 1000


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


def lease(
    session: Session, project: Project, user: User, *, now: datetime | None = None
) -> Lease | None:
    """Lease the next due task of ``project`` to ``user``, or None when nothing is due to them."""
    now = now or utcnow()
    _lock_membership(session, project.id, user.id)
    held = _held_lease(session, project.id, user.id, now)
    if held is not None:
        session.commit()
        return held
    reclaim_expired(session, project.id, now)
    task_id = _choose_task(session, project.id, user.id)
    if task_id is None:
        session.commit()
        return None
    policy = policy_of(project)
    assignment = Assignment(
        project_id=project.id,
        task_id=task_id,
        user_id=user.id,
        status=AssignmentStatus.leased,
        leased_at=now,
        expires_at=now + timedelta(seconds=policy.lease_seconds),
    )
    session.add(assignment)
    session.execute(
        update(Task)
        .where(Task.id == task_id)
        .values(n_leased=Task.n_leased + 1)
        .execution_options(synchronize_session=False)
    )
    recompute_task_status(session, task_ids=[task_id])
    session.commit()
    return Lease(assignment, _task(session, task_id))


def _lock_membership(session: Session, project_id: int, user_id: int) -> None:
    # NOTE: serializes one annotator's concurrent calls in a project (a double click), so
    # two requests cannot both find no held lease and take two tasks.
    query = (
        select(Membership.user_id)
        .where(Membership.project_id == project_id, Membership.user_id == user_id)
        .with_for_update()
    )
    session.execute(query)


def _held_lease(session: Session, project_id: int, user_id: int, now: datetime) -> Lease | None:
    query = select(Assignment).where(
        Assignment.project_id == project_id,
        Assignment.user_id == user_id,
        Assignment.status == AssignmentStatus.leased,
        Assignment.expires_at > now,
    )
    assignment = session.scalars(query.order_by(Assignment.id).limit(1)).first()
    if assignment is None:
        return None
    return Lease(assignment, _task(session, assignment.task_id))


def _task(session: Session, task_id: int) -> Task:
    task = session.get(Task, task_id, populate_existing=True)
    assert task is not None, "a leased task cannot disappear inside its transaction"
    return task


def _choose_task(session: Session, project_id: int, user_id: int) -> int | None:
    """The due task to hand out next: highest priority, then nearest completion, then oldest."""
    had_it = exists().where(Assignment.task_id == Task.id, Assignment.user_id == user_id)
    query = (
        select(Task.id)
        .where(
            Task.project_id == project_id,
            Task.status == TaskStatus.open,
            Task.n_submitted + Task.n_leased < Task.overlap,
            ~had_it,
        )
        .order_by(Task.priority.desc(), Task.n_submitted.desc(), Task.id)
        .limit(1)
        .with_for_update(skip_locked=True, of=Task)
    )
    return session.scalar(query)


def reclaim_expired(session: Session, project_id: int, now: datetime) -> int:
    """Mark leases past their expiry as expired and give their slots back; returns how many."""
    query = (
        select(Assignment.id, Assignment.task_id)
        .where(
            Assignment.project_id == project_id,
            Assignment.status == AssignmentStatus.leased,
            Assignment.expires_at <= now,
        )
        .order_by(Assignment.id)
        .limit(RECLAIM_BATCH)
        .with_for_update(skip_locked=True)
    )
    expired = session.execute(query).all()
    if not expired:
        return 0
    session.execute(
        update(Assignment)
        .where(Assignment.id.in_([row.id for row in expired]))
        .values(status=AssignmentStatus.expired, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    freed = Counter(row.task_id for row in expired)
    for task_id in sorted(freed):  # a fixed order, so two reclaims cannot deadlock
        session.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(n_leased=Task.n_leased - freed[task_id])
            .execution_options(synchronize_session=False)
        )
    recompute_task_status(session, task_ids=sorted(freed))
    return len(expired)


def request_hash(assignment_id: int, answers: Any, duration_ms: int | None) -> str:
    body = {"assignment_id": assignment_id, "answers": answers, "duration_ms": duration_ms}
    return hashlib.sha256(canonical_json(body)).hexdigest()


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
    now = now or utcnow()
    assignment = get(session, assignment_id, for_update=True)
    policies.authorize(user, policies.can_submit(assignment), "only the lease holder may submit")
    digest = request_hash(assignment_id, answers, duration_ms)
    if key is not None:
        replay = _replay(session, user, key, digest)
        if replay is not None:
            session.commit()
            return replay
    if assignment.status is AssignmentStatus.submitted:
        raise Conflict(f"assignment {assignment_id} is already submitted")
    if assignment.status is AssignmentStatus.skipped:
        raise Conflict(f"assignment {assignment_id} was skipped; ask for the next task")
    task = session.scalar(select(Task).where(Task.id == assignment.task_id).with_for_update())
    assert task is not None
    project = session.get(Project, assignment.project_id)
    assert project is not None
    refuse_nul(answers, "answers")
    clean = check_answers(schema_of(project), task.data, answers)
    _take_slot(task, assignment)
    assignment.status = AssignmentStatus.submitted
    assignment.finished_at = now
    annotation = Annotation(
        assignment_id=assignment.id,
        project_id=assignment.project_id,
        task_id=task.id,
        user_id=user.id,
        answers=clean,
        duration_ms=duration_ms,
        submitted_at=now,
    )
    session.add(annotation)
    session.flush()
    if key is not None:
        session.add(
            IdempotencyRecord(
                user_id=user.id,
                key=key,
                request_hash=digest,
                status_code=200,
                response={"annotation_id": annotation.id},
                created_at=now,
            )
        )
    session.flush()
    recompute_task_status(session, task_ids=[task.id])
    session.commit()
    return annotation


def _take_slot(task: Task, assignment: Assignment) -> None:
    """Turn the lease's slot into a label; a reclaimed lease needs a slot that is still free."""
    if assignment.status is AssignmentStatus.leased:
        task.n_leased -= 1
    elif task.n_submitted + task.n_leased >= task.overlap:
        raise Conflict(
            f"the lease on task {task.id} expired and its slot went to another annotator; "
            "ask for the next task"
        )
    task.n_submitted += 1


def _replay(session: Session, user: User, key: str, digest: str) -> Annotation | None:
    record = session.get(IdempotencyRecord, (user.id, key))
    if record is None:
        return None
    if record.request_hash != digest:
        raise Invalid.one("Idempotency-Key", "was already used with a different request body")
    annotation = session.get(Annotation, record.response["annotation_id"])
    if annotation is None:
        raise Conflict("the annotation this Idempotency-Key created no longer exists")
    return annotation


def skip(
    session: Session, assignment_id: int, user: User, *, now: datetime | None = None
) -> Assignment:
    """Give the task back; the annotator will not be offered it again."""
    now = now or utcnow()
    assignment = get(session, assignment_id, for_update=True)
    policies.authorize(user, policies.can_submit(assignment), "only the lease holder may skip")
    if assignment.status is AssignmentStatus.submitted:
        raise Conflict(f"assignment {assignment_id} is already submitted")
    if assignment.status is AssignmentStatus.leased:
        session.execute(
            update(Task)
            .where(Task.id == assignment.task_id)
            .values(n_leased=Task.n_leased - 1)
            .execution_options(synchronize_session=False)
        )
    assignment.status = AssignmentStatus.skipped
    assignment.finished_at = now
    session.flush()
    recompute_task_status(session, task_ids=[assignment.task_id])
    session.commit()
    return assignment
