"""A project's figures: progress, labels, and who labelled how much."""

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


@dataclass(frozen=True)
class AnnotatorFigures:
    annotator: str  # pseudonym
    labels: int


@dataclass(frozen=True)
class ProjectStats:
    tasks: int
    complete: int
    open: int
    gold_tasks: int
    labels: int
    live_leases: int
    annotators: list[AnnotatorFigures] = field(default_factory=list)

    @property
    def progress(self) -> float:
        return self.complete / self.tasks if self.tasks else 0.0


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
        annotators=annotators,
    )
