"""Qualification: a project's first gold tasks, answered before any real work.

With ``qualification: {tasks: N, pass_rate: p}`` in the policy, the project's first N gold tasks
(in import order) are its qualification. Until an annotator has passed, ``next`` serves them
only those, in order (``lease_rules.qualification_filter``); each is answered by everyone who
qualifies, so a lease adds a slot to it instead of taking one. Once they have held every one
(answered, skipped or let expire), the next ``next`` grades them: right answers over the
gradeable tasks (an unanswered one counts as wrong) at or above ``pass_rate`` passes. A pass
opens the real work; a failure locks the annotator out of the project (``next`` answers 204)
until an owner resets them, which keeps the attempt on record and clears their qualification
answers, so they can take it again.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from quorum.db.models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    LedgerEntry,
    Project,
    ProjectWorker,
    QualificationAttempt,
    Task,
    User,
)
from quorum.db.types import utcnow
from quorum.domain import gold
from quorum.domain.errors import Conflict
from quorum.domain.pause import FAILED, PASSED, ensure_worker
from quorum.domain.projects import policy_of
from quorum.domain.task_status import status_after


def task_ids(session: Session, project: Project) -> list[int]:
    """The project's qualification tasks: its first ``qualification.tasks`` gold tasks."""
    wanted = policy_of(project).qualification
    if wanted is None:
        return []
    query = (
        select(Task.id)
        .where(Task.project_id == project.id, Task.gold.is_not(None))
        .order_by(Task.id)
        .limit(wanted.tasks)
    )
    return list(session.scalars(query))


def last_task_id(session: Session, project: Project) -> int:
    """The id of the last qualification task, 0 without a qualification."""
    ids = task_ids(session, project)
    return ids[-1] if ids else 0


def grade(
    session: Session, project: Project, user_id: int, *, now: datetime | None = None
) -> QualificationAttempt:
    """Grade the annotator's qualification answers and record the verdict (module doc)."""
    now = now or utcnow()
    wanted = policy_of(project).qualification
    assert wanted is not None, "only a project with a qualification grades one"
    tasks = task_ids(session, project)
    answered = session.scalars(
        select(Annotation.id).where(
            Annotation.user_id == user_id, Annotation.task_id.in_(tasks or [0])
        )
    ).all()
    last = tasks[-1] if tasks else 0
    graded = gold.grade_gold(session, project, answered, qualification_last=last, now=now)
    gradeable = _gradeable(session, project, tasks)
    correct = sum(item.correct for item in graded if item.task_id in gradeable)
    passed = not gradeable or correct / len(gradeable) >= wanted.pass_rate
    worker = ensure_worker(session, project.id, user_id)
    worker.qualification, worker.qualified_at = (PASSED if passed else FAILED), now
    attempt = QualificationAttempt(
        project_id=project.id,
        user_id=user_id,
        correct=correct,
        total=len(gradeable),
        passed=passed,
        decided_at=now,
    )
    session.add(attempt)
    session.flush()
    return attempt


def _gradeable(session: Session, project: Project, tasks: list[int]) -> set[int]:
    """The qualification tasks whose gold covers a question that can be graded."""
    from quorum.domain.projects import schema_of

    schema = schema_of(project)
    rows = session.execute(select(Task.id, Task.gold).where(Task.id.in_(tasks or [0])))
    return {
        task_id
        for task_id, reference in rows
        if any(
            (reference or {}).get(q.name) is not None and q.kind not in gold.UNGRADED
            for q in schema.questions
        )
    }


@dataclass(frozen=True)
class Status:
    state: str  # "not required", "qualifying", "passed", "failed"
    attempts: list[QualificationAttempt]


def status(session: Session, project: Project, user_id: int) -> Status:
    attempts = list(
        session.scalars(
            select(QualificationAttempt)
            .where(
                QualificationAttempt.project_id == project.id,
                QualificationAttempt.user_id == user_id,
            )
            .order_by(QualificationAttempt.id)
        )
    )
    if policy_of(project).qualification is None:
        return Status("not required", attempts)
    worker = session.get(ProjectWorker, (project.id, user_id))
    state = worker.qualification if worker and worker.qualification else "qualifying"
    return Status(state, attempts)


def reset(
    session: Session, project: Project, user_id: int, *, by: User, now: datetime | None = None
) -> None:
    """Let the annotator take the qualification again: the attempt stays on record, their
    qualification answers and leases are removed (and the tasks' counts with them). Commits."""
    now = now or utcnow()
    worker = ensure_worker(session, project.id, user_id)
    if worker.qualification is None:
        raise Conflict("this annotator has no graded qualification to reset")
    tasks = task_ids(session, project)
    mine = select(Annotation.id).where(
        Annotation.user_id == user_id, Annotation.task_id.in_(tasks or [0])
    )
    if session.scalar(select(LedgerEntry.id).where(LedgerEntry.annotation_id.in_(mine)).limit(1)):
        raise Conflict("these qualification labels were paid; they cannot be cleared")
    held = session.execute(
        delete(Assignment)
        .where(Assignment.user_id == user_id, Assignment.task_id.in_(tasks or [0]))
        .returning(Assignment.task_id, Assignment.status)
        .execution_options(synchronize_session=False)
    ).all()
    _give_back(session, held)
    session.execute(
        update(QualificationAttempt)
        .where(
            QualificationAttempt.project_id == project.id,
            QualificationAttempt.user_id == user_id,
            QualificationAttempt.reset_at.is_(None),
        )
        .values(reset_at=now, reset_by=by.id)
    )
    worker.qualification, worker.qualified_at = None, None
    session.commit()


def _give_back(session: Session, held: Sequence[tuple[int, AssignmentStatus]]) -> None:
    """Each removed qualification assignment had added a slot (and maybe a label or a lease)
    to its task: take them off again, tasks in id order (the lease engine's lock order)."""
    slots, labels, leases = Counter[int](), Counter[int](), Counter[int]()
    for task_id, state in held:
        slots[task_id] += 1
        labels[task_id] += state is AssignmentStatus.submitted
        leases[task_id] += state is AssignmentStatus.leased
    for task_id in sorted(slots):
        overlap = Task.overlap - slots[task_id]
        session.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(
                overlap=overlap,
                n_submitted=Task.n_submitted - labels[task_id],
                n_leased=Task.n_leased - leases[task_id],
                status=status_after(Task.n_submitted - labels[task_id], overlap),
            )
            .execution_options(synchronize_session=False)
        )
