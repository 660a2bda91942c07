"""A project's figures: progress, labels, and who labelled how much."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quorum.db.models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    Project,
    Task,
    TaskStatus,
    User,
)
from quorum.db.types import utcnow
from quorum.domain import qualification
from quorum.domain.projects import policy_of


@dataclass(frozen=True)
class AnnotatorFigures:
    annotator: str  # pseudonym
    labels: int


@dataclass(frozen=True)
class Work:
    """A project's tasks routed as real work, and how many of them are complete."""

    tasks: int
    complete: int

    @property
    def progress(self) -> float:
        return self.complete / self.tasks if self.tasks else 0.0


@dataclass(frozen=True)
class ProjectStats:
    tasks: int
    complete: int
    open: int
    gold_tasks: int
    labels: int
    live_leases: int
    work: Work
    annotators: list[AnnotatorFigures] = field(default_factory=list)

    @property
    def progress(self) -> float:
        return self.work.progress


def work_counts(session: Session, projects: Sequence[Project]) -> dict[int, Work]:
    """Per project id, its work: every task but the hidden gold checks (where ``gold_rate``
    hides gold) and the qualification tasks.

    NOTE: progress counts work only because the others never have to finish. A hidden check is
    handed out only beside real work (no task after a 204 is a check), so checks can stay open
    for good once the work is done; a qualification task is complete whenever no newcomer is
    on it. Counted with them, a project with a large gold set would stall below 100%.
    """
    ids = [project.id for project in projects]
    by_kind = session.execute(
        select(Task.project_id, Task.gold.is_not(None), Task.status, func.count())
        .where(Task.project_id.in_(ids))
        .group_by(Task.project_id, Task.gold.is_not(None), Task.status)
    ).all()
    hidden = {project.id for project in projects if policy_of(project).gold_rate > 0}
    tasks = dict.fromkeys(ids, 0)
    complete = dict.fromkeys(ids, 0)
    for project_id, is_gold, status, count in by_kind:
        if is_gold and project_id in hidden:
            continue
        tasks[project_id] += count
        complete[project_id] += count if status is TaskStatus.complete else 0
    for project in projects:
        if project.id in hidden:
            continue  # its qualification tasks are gold, already left out
        for status in _statuses(session, qualification.task_ids(session, project)):
            tasks[project.id] -= 1
            complete[project.id] -= 1 if status is TaskStatus.complete else 0
    return {pid: Work(tasks[pid], complete[pid]) for pid in ids}


def _statuses(session: Session, task_ids: list[int]) -> list[TaskStatus]:
    if not task_ids:
        return []
    return list(session.scalars(select(Task.status).where(Task.id.in_(task_ids))))


def project_stats(
    session: Session, project: Project, *, now: datetime | None = None
) -> ProjectStats:
    now = now or utcnow()
    counted = select(Task.status, func.count()).where(Task.project_id == project.id)
    by_status: dict[TaskStatus, int] = dict(session.execute(counted.group_by(Task.status)).all())
    gold = session.scalar(
        select(func.count()).where(Task.project_id == project.id, Task.gold.is_not(None))
    )
    live = session.scalar(
        select(func.count()).where(
            Assignment.project_id == project.id,
            Assignment.status == AssignmentStatus.leased,
            Assignment.expires_at > now,
        )
    )
    per_annotator = session.execute(
        select(User.pseudonym, func.count(Annotation.id))
        .join(User, User.id == Annotation.user_id)
        .where(Annotation.project_id == project.id)
        .group_by(User.pseudonym)
        .order_by(func.count(Annotation.id).desc(), User.pseudonym)
    )
    annotators = [AnnotatorFigures(name, count) for name, count in per_annotator]
    complete = by_status.get(TaskStatus.complete, 0)
    open_ = by_status.get(TaskStatus.open, 0)
    return ProjectStats(
        tasks=complete + open_,
        complete=complete,
        open=open_,
        gold_tasks=gold or 0,
        labels=sum(a.labels for a in annotators),
        live_leases=live or 0,
        work=work_counts(session, [project])[project.id],
        annotators=annotators,
    )
