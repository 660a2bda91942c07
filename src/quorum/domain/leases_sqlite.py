"""The annotation loop on SQLite: the rules of ``lease_rules``, as plain steps in a session.

A write transaction on SQLite begins IMMEDIATE (``quorum.db.engine``), so one writer runs at a
time, across threads and processes: the steps need no row locks and a read-then-write cannot
race. The results and errors are those of ``leases_pg`` and ``submits_pg``; the same tests run
on both.
"""

import random
from collections import Counter
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Boolean,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningUpdate

from quorum.db.models import (
    Annotation,
    Assignment,
    IdempotencyRecord,
    Membership,
    Project,
    Task,
)
from quorum.db.types import dumps_json
from quorum.domain.errors import Conflict
from quorum.domain.lease_rules import (
    EXPIRED,
    GOLD_ORDER,
    GRADE,
    LEASE_ORDER,
    LEASED,
    REFUSED,
    SKIPPED,
    SUBMITTED,
    AssignmentView,
    Grade,
    LeaseView,
    Refused,
    Standing,
    Submission,
    SubmissionView,
    gold_filter,
    qualification_filter,
    qualification_overlap,
    reads_task_data,
    refusal_query,
    refuse_finished,
    schema_from_text,
    slot_free,
    slot_taken,
    standing_query,
    work_filter,
)
from quorum.domain.policy import DEFAULT_LEASE_SECONDS
from quorum.domain.task_status import status_after


def lease(
    session: Session, project_id: int, user_id: int, now: datetime, *, coin: float | None = None
) -> LeaseView | Refused | Grade | None:
    """The annotator's live lease, a new one, None when nothing is due, REFUSED, or GRADE when
    they answered every qualification task (the caller grades them and asks again).

    ``coin`` in [0, 1) decides hidden gold (gold when below ``gold_rate``); drawn when not given.
    """
    policy = _policy(session, project_id, user_id)
    if policy is None:
        return REFUSED
    lease_seconds = int(policy.get("lease_seconds", DEFAULT_LEASE_SECONDS))
    held = _held(session, project_id, user_id, now, _hides_gold(policy))
    if held is not None:
        return held
    reclaim_expired(session, project_id, now)
    who = {"project_id": project_id, "user_id": user_id}
    row = session.execute(_standing_statement(), who).one()
    tier, blocked, qualifying, qual_last, gold_rate, ready_to_grade = row
    drawn = _COIN.random() if coin is None else coin
    standing = {
        "tier": tier,
        "blocked": bool(blocked),
        "qualifying": bool(qualifying),
        "qual_last": qual_last,
        "hides_gold": gold_rate > 0,
        "gold_coin": drawn < gold_rate,
    }
    task_id, bump = _choose(session, who | standing)
    if task_id is None:
        return GRADE if ready_to_grade else None
    expires_at = now + timedelta(seconds=lease_seconds)
    assignment_id = session.scalar(
        insert(Assignment)
        .values(
            project_id=project_id,
            task_id=task_id,
            user_id=user_id,
            status=LEASED,
            leased_at=now,
            expires_at=expires_at,
        )
        .returning(Assignment.id)
    )
    overlap = qualification_overlap(bump)
    data = session.scalar(
        update(Task)
        .where(Task.id == task_id)
        .values(
            n_leased=Task.n_leased + 1,
            overlap=overlap,
            status=status_after(Task.n_submitted, overlap),
        )
        .returning(Task.data)
    )
    assert assignment_id is not None and data is not None, "the chosen task was just seen"
    return LeaseView(assignment_id, task_id, data, expires_at, gold_rate > 0)


# NOTE: the gold coin of SQLite leases; PostgreSQL draws it with random() in the statement.
_COIN = random.Random()


def _choose(session: Session, params: dict[str, Any]) -> tuple[int | None, int]:
    """The task to lease and the slots its overlap gains: the next qualification task, else
    hidden gold when the coin says so, else real work (``lease_rules``)."""
    for query, bump in _choice_statements():
        task_id = session.scalar(query, params)
        if task_id is not None:
            return task_id, bump
    return None, 0


# NOTE: the loop's biggest statements are built once, with bound parameters, and run with the
# caller's values: building them anew cost more than running them (about 3 ms a label).
@cache
def _standing_statement() -> Select[int, bool, bool, int, float, bool]:
    project, user = bindparam("project_id", type_=Integer), bindparam("user_id", type_=Integer)
    return standing_query(project, user)


@cache
def _choice_statements() -> tuple[tuple[Select[int], int], ...]:
    project, user = bindparam("project_id", type_=Integer), bindparam("user_id", type_=Integer)
    standing = Standing(
        bindparam("tier", type_=Integer),
        bindparam("blocked", type_=Boolean),
        bindparam("qualifying", type_=Boolean),
        bindparam("qual_last", type_=Integer),
        bindparam("hides_gold", type_=Boolean),
        bindparam("gold_coin", type_=Boolean),
    )
    picks = (
        (qualification_filter, (Task.id,), 1),
        (gold_filter, GOLD_ORDER, 0),
        (work_filter, LEASE_ORDER, 0),
    )
    return tuple(
        (select(Task.id).where(*rule(project, user, standing)).order_by(*order).limit(1), bump)
        for rule, order, bump in picks
    )


def _policy(session: Session, project_id: int, user_id: int) -> dict[str, Any] | None:
    """The project's policy, or None when the user is not a member of the project."""
    query = (
        select(Project.policy)
        .join(Membership, Membership.project_id == Project.id)
        .where(Project.id == project_id, Membership.user_id == user_id)
    )
    return session.scalar(query)


def _hides_gold(policy: dict[str, Any]) -> bool:
    return float(policy.get("gold_rate") or 0) > 0


def _held(
    session: Session, project_id: int, user_id: int, now: datetime, hides_gold: bool
) -> LeaseView | None:
    query = (
        select(Assignment.id, Assignment.task_id, Task.data, Assignment.expires_at)
        .join(Task, Task.id == Assignment.task_id)
        .where(
            Assignment.project_id == project_id,
            Assignment.user_id == user_id,
            Assignment.status == LEASED,
            Assignment.expires_at > now,
        )
    )
    row = session.execute(query).first()
    if row is None:
        return None
    assignment_id, task_id, data, expires_at = row
    return LeaseView(assignment_id, task_id, data, expires_at, hides_gold)


def reclaim_expired(session: Session, project_id: int, now: datetime) -> int:
    """Expire the project's leases past their time and give their slots back."""
    expired = session.scalars(_expire_statement(), {"in_project": project_id, "now": now})
    freed = Counter(expired)
    for task_id in sorted(freed):
        session.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(n_leased=Task.n_leased - freed[task_id], status=status_after(Task.n_submitted))
        )
    return sum(freed.values())


def submit(
    session: Session, user_id: int, submission: Submission, now: datetime
) -> SubmissionView | Refused:
    """Record the holder's answers exactly once; with a key, a retry replays the first reply."""
    assignment_id = submission.assignment_id
    record = and_(IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == submission.key)
    query = (
        select(
            Assignment.user_id,
            Assignment.status,
            Assignment.task_id,
            Project.schema,
            Project.policy,
            IdempotencyRecord.request_hash,
            IdempotencyRecord.response,
        )
        .join(Project, Project.id == Assignment.project_id)
        .outerjoin(IdempotencyRecord, record)
        .where(Assignment.id == assignment_id)
    )
    row = session.execute(query).first()
    if row is None or row.user_id != user_id:
        return REFUSED
    hides = _hides_gold(row.policy)
    if submission.is_replay(row.request_hash):
        return _replayed(session, row.response["annotation_id"], hides)
    refuse_finished(assignment_id, row.status)
    schema = schema_from_text(dumps_json(row.schema))
    data = _task_data(session, row.task_id) if reads_task_data(schema) else {}
    clean = submission.validated(schema, data)
    _take_slot(session, assignment_id, row.task_id, row.status, user_id)
    session.execute(
        update(Assignment)
        .where(Assignment.id == assignment_id)
        .values(status=SUBMITTED, finished_at=now)
    )
    annotation_id = _save(session, submission, user_id, clean, now)
    return SubmissionView(
        annotation_id, assignment_id, row.task_id, clean, submission.duration_ms, now, hides
    )


def _task_data(session: Session, task_id: int) -> Any:
    return session.scalar(select(Task.data).where(Task.id == task_id))


def _take_slot(
    session: Session, assignment_id: int, task_id: int, status: str, holder: int
) -> None:
    """Count the label on its task, or refuse it (409, saying why)."""
    params = {
        "the_task": task_id,
        "status_was": str(status),
        "released": int(status == LEASED),
        "holder": holder,
    }
    taken = session.scalar(_take_slot_statement(), params)
    if taken is None:
        raise slot_taken(*session.execute(refusal_query(literal(assignment_id))).one())


@cache
def _expire_statement() -> ReturningUpdate[int]:
    now = bindparam("now", type_=Assignment.expires_at.type)
    return (
        update(Assignment)
        .where(
            Assignment.project_id == bindparam("in_project", type_=Integer),
            Assignment.status == LEASED,
            Assignment.expires_at <= now,
        )
        .values(status=EXPIRED, finished_at=now)
        .returning(Assignment.task_id)
    )


@cache
def _take_slot_statement() -> ReturningUpdate[int]:
    return (
        update(Task)
        .where(
            Task.id == bindparam("the_task", type_=Integer),
            slot_free(bindparam("status_was", type_=String), bindparam("holder", type_=Integer)),
        )
        .values(
            n_submitted=Task.n_submitted + 1,
            n_leased=Task.n_leased - bindparam("released", type_=Integer),
            status=status_after(Task.n_submitted + 1),
        )
        .returning(Task.id)
    )


def _save(
    session: Session, submission: Submission, user_id: int, answers: Any, now: datetime
) -> int:
    assignment = select(Assignment.project_id, Assignment.task_id).where(
        Assignment.id == submission.assignment_id
    )
    project_id, task_id = session.execute(assignment).one()
    annotation_id = session.scalar(
        insert(Annotation)
        .values(
            assignment_id=submission.assignment_id,
            project_id=project_id,
            task_id=task_id,
            user_id=user_id,
            answers=answers,
            duration_ms=submission.duration_ms,
            submitted_at=now,
        )
        .returning(Annotation.id)
    )
    assert annotation_id is not None
    if submission.key is not None:
        session.execute(
            insert(IdempotencyRecord).values(
                user_id=user_id,
                key=submission.key,
                request_hash=submission.digest,
                status_code=200,
                response={"annotation_id": annotation_id},
                created_at=now,
            )
        )
    return int(annotation_id)


def _replayed(session: Session, annotation_id: int, hides_gold: bool) -> SubmissionView:
    annotation = session.get(Annotation, annotation_id)
    if annotation is None:
        raise Conflict("the annotation this Idempotency-Key created no longer exists")
    return SubmissionView(
        annotation.id,
        annotation.assignment_id,
        annotation.task_id,
        annotation.answers,
        annotation.duration_ms,
        annotation.submitted_at,
        hides_gold,
        replay=True,
    )


def skip(
    session: Session, assignment_id: int, user_id: int, now: datetime
) -> AssignmentView | Refused:
    """Skip the user's assignment; skipping it again changes nothing."""
    query = (
        select(
            Assignment.user_id,
            Assignment.task_id,
            Assignment.status,
            Assignment.leased_at,
            Assignment.expires_at,
            Assignment.finished_at,
            Project.policy,
        )
        .join(Project, Project.id == Assignment.project_id)
        .where(Assignment.id == assignment_id)
    )
    row = session.execute(query).first()
    if row is None or row.user_id != user_id:
        return REFUSED
    if row.status == SUBMITTED:
        raise Conflict(f"assignment {assignment_id} is already submitted")
    finished_at = row.finished_at
    if row.status in (LEASED, EXPIRED):
        finished_at = now
        _give_back(session, assignment_id, row.task_id, row.status, now)
    return AssignmentView(
        assignment_id,
        row.task_id,
        SKIPPED,
        row.leased_at,
        row.expires_at,
        finished_at,
        _hides_gold(row.policy),
    )


def _give_back(
    session: Session, assignment_id: int, task_id: int, status: str, now: datetime
) -> None:
    if status == LEASED:
        session.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(n_leased=Task.n_leased - 1, status=status_after(Task.n_submitted))
        )
    session.execute(
        update(Assignment)
        .where(Assignment.id == assignment_id)
        .values(status=SKIPPED, finished_at=now)
    )
