"""Auto-pause: an annotator confidently below the project's accuracy floor stops labelling it.

Rule: with their trust in the project (``quorum.domain.trust``, Beta(1, 1) prior over graded
labels), once P(accuracy < ``accuracy_floor``) > 0.95 they are paused in that project. Being
paused means: ``next`` answers 204 (the lease's standing says *blocked*), their live leases in
the project are freed at once, and their labels are left out of aggregation (kept, and shown as
excluded) until an owner un-pauses them. The reason, with the figures behind it, is stored for
the owner. An un-pause starts a new evidence window: only outcomes recorded after it count
towards the next auto-pause, so an owner's decision is not undone by the evidence it overruled.

Where the project has a qualification, the rule weighs only annotators who passed it: until then
the qualification is their gate (failing it locks them out, and an owner's reset lets them try
again), and a pause on the same answers would outlive that reset.
"""

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session

from quorum.db.models import (
    Annotation,
    Membership,
    Project,
    ProjectWorker,
    User,
)
from quorum.db.types import utcnow
from quorum.domain.errors import Conflict, NotFound
from quorum.domain.projects import policy_of
from quorum.domain.task_status import free_leases
from quorum.domain.text import refuse_nul
from quorum.domain.trust import PAUSE_CERTAINTY, Trust, in_project

# ProjectWorker.qualification: graded, one way or the other (no row or None: not graded yet)
PASSED = "passed"
FAILED = "failed"


def ensure_worker(session: Session, project_id: int, user_id: int) -> ProjectWorker:
    """The annotator's standing row in the project, created when missing, locked for update.

    NOTE: an INSERT that ignores a conflict, then a locking read: two transactions creating the
    same row (the loop and a lease grading a qualification) do not fail each other.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(ProjectWorker)
        .values(project_id=project_id, user_id=user_id, pause_reason="")
        .on_conflict_do_nothing()
    )
    query = select(ProjectWorker).where(
        ProjectWorker.project_id == project_id, ProjectWorker.user_id == user_id
    )
    found = session.scalar(query.with_for_update().execution_options(populate_existing=True))
    assert found is not None, "the row was just created"
    return found


def excluded(
    project_id: ColumnElement[int] | InstrumentedAttribute[int],
    user_id: ColumnElement[int] | InstrumentedAttribute[int],
) -> ColumnElement[bool]:
    """SQL: whether this annotator's labels are left out of the project's aggregate (paused)."""
    return exists().where(
        ProjectWorker.project_id == project_id,
        ProjectWorker.user_id == user_id,
        ProjectWorker.paused_at.is_not(None),
    )


def usable_label() -> ColumnElement[bool]:
    """SQL, on ``annotations``: the label counts in aggregation (its annotator is not paused)."""
    return ~excluded(Annotation.project_id, Annotation.user_id)


def paused_ids(session: Session, project_id: int) -> set[int]:
    query = select(ProjectWorker.user_id).where(
        ProjectWorker.project_id == project_id, ProjectWorker.paused_at.is_not(None)
    )
    return set(session.scalars(query))


def reason_for(trust: Trust, floor: float) -> str:
    return (
        f"P(accuracy < {floor:.0%}) = {trust.below(floor):.1%} after {trust.correct} of "
        f"{trust.total} graded labels right (mean {trust.mean:.0%}, 90% interval "
        f"{trust.interval[0]:.0%}-{trust.interval[1]:.0%})"
    )


def check(
    session: Session, project: Project, user_ids: Collection[int], *, now: datetime | None = None
) -> list[int]:
    """Pause the annotators among ``user_ids`` whom the rule (module doc) now catches."""
    if not user_ids:
        return []
    policy = policy_of(project)
    rows = session.execute(
        select(
            ProjectWorker.user_id,
            ProjectWorker.paused_at,
            ProjectWorker.evidence_since,
            ProjectWorker.qualification,
        ).where(ProjectWorker.project_id == project.id, ProjectWorker.user_id.in_(list(user_ids)))
    ).all()
    if policy.qualification is not None:
        passed = {user_id for user_id, _, _, state in rows if state == PASSED}
        user_ids = [user_id for user_id in user_ids if user_id in passed]
    already = {user_id for user_id, paused_at, _, _ in rows if paused_at is not None}
    since = {user_id: start for user_id, _, start, _ in rows if start is not None}
    evidence = in_project(session, project.id, user_ids, since=since)
    floor = policy.accuracy_floor
    caught = sorted(
        user_id
        for user_id, trust in evidence.items()
        if user_id not in already and trust.below(floor) > PAUSE_CERTAINTY
    )
    for user_id in caught:
        reason = "auto: " + reason_for(evidence[user_id], floor)
        pause(session, project.id, user_id, reason, now=now)
    return caught


def pause(
    session: Session,
    project_id: int,
    user_id: int,
    reason: str,
    *,
    by: User | None = None,
    now: datetime | None = None,
) -> ProjectWorker:
    """Pause the annotator in the project and free their live leases there."""
    now = now or utcnow()
    worker = ensure_worker(session, project_id, user_id)
    if worker.paused_at is None:
        worker.paused_at, worker.pause_reason = now, reason[:500]
        worker.paused_by = by.id if by else None
        free_leases(session, project_id, user_id, now)
    session.flush()
    return worker


def unpause(
    session: Session, project_id: int, user_id: int, *, by: User, now: datetime | None = None
) -> ProjectWorker:
    """Let a paused annotator label again; auto-pause then weighs only new evidence. Commits."""
    now = now or utcnow()
    worker = session.get(ProjectWorker, (project_id, user_id), with_for_update=True)
    if worker is None or worker.paused_at is None:
        raise Conflict("this annotator is not paused in this project")
    worker.paused_at, worker.unpaused_at, worker.unpaused_by = None, now, by.id
    worker.evidence_since = now
    session.commit()
    return worker


def pause_by_owner(
    session: Session, project_id: int, user_id: int, reason: str, *, by: User
) -> ProjectWorker:
    """An owner's pause, with their reason; commits. Pausing a paused annotator is a 409."""
    refuse_nul(reason, "reason")
    found = session.get(ProjectWorker, (project_id, user_id))
    if found is not None and found.paused_at is not None:
        raise Conflict("this annotator is already paused in this project")
    worker = pause(session, project_id, user_id, f"by an owner: {reason.strip()}", by=by)
    session.commit()
    return worker


def standing_of(session: Session, project_id: int, user_id: int) -> ProjectWorker | None:
    return session.get(ProjectWorker, (project_id, user_id))


def get_member_worker(session: Session, project: Project, user_id: int) -> User:
    """The user, when they are a member of the project, or have a standing or labels in it
    (a former member); else NotFound. A member who has not labelled yet may be paused too,
    before their first task or in the middle of it."""
    user = session.get(User, user_id)
    member = exists().where(Membership.project_id == project.id, Membership.user_id == user_id)
    labelled = exists().where(
        and_(Annotation.project_id == project.id, Annotation.user_id == user_id)
    )
    standing = exists().where(
        ProjectWorker.project_id == project.id, ProjectWorker.user_id == user_id
    )
    if user is None or not session.scalar(select(member | labelled | standing)):
        raise NotFound(f"user {user_id} has not worked in project {project.id}")
    return user
