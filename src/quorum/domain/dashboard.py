"""Figures for the web pages: each a fixed number of grouped queries, whatever the data size.

``my_projects`` is the projects list (a member's progress and own figures); ``project_overview``
is a requester's dashboard. Agreement numbers come from ``quorum.truth`` (see ``agreement``).
"""

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from quorum.db.models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    Membership,
    Project,
    Review,
    ReviewStatus,
    Role,
    Task,
    User,
)
from quorum.domain import aggregation, ledger
from quorum.domain import dashboard_figures as figures
from quorum.domain.pause import usable_label
from quorum.domain.projects import schema_of
from quorum.domain.questions import ChoiceQuestion, QuestionSchema
from quorum.domain.stats import ProjectStats, project_stats, work_counts


@dataclass(frozen=True)
class ProjectSummary:
    project: Project
    role: Role | None
    tasks: int  # the project's work (``stats.work_counts``): no hidden gold, no qualification
    complete: int
    my_labels: int
    my_skipped: int
    my_rejected: int
    my_median_seconds: float | None
    my_earned_cents: int
    reviews_waiting: int

    @property
    def progress(self) -> float:
        return self.complete / self.tasks if self.tasks else 0.0


def my_projects(session: Session, user: User) -> list[ProjectSummary]:
    """The projects ``user`` belongs to (admins: all) with progress and their own figures."""
    mine = and_(Membership.project_id == Project.id, Membership.user_id == user.id)
    query = select(Project, Membership.role).outerjoin(Membership, mine).order_by(Project.id)
    if not user.is_admin:
        query = query.where(Membership.user_id.is_not(None))
    rows = session.execute(query).all()
    ids = [project.id for project, _ in rows]
    work = work_counts(session, [project for project, _ in rows])
    labels = _my_labels(session, ids, user.id)
    skipped = _my_skipped(session, ids, user.id)
    waiting = _reviews_waiting(session, ids, user.id)
    earned = ledger.earned_in_projects(session, user.id, ids)
    summaries = []
    for project, role in rows:
        total, complete = work[project.id].tasks, work[project.id].complete
        count, rejected, durations = labels.get(project.id, (0, 0, []))
        summaries.append(
            ProjectSummary(
                project=project,
                role=role,
                tasks=total,
                complete=complete,
                my_labels=count,
                my_skipped=skipped.get(project.id, 0),
                my_rejected=rejected,
                my_median_seconds=_median(durations),
                my_earned_cents=earned.get(project.id, 0),
                reviews_waiting=waiting.get(project.id, 0),
            )
        )
    return summaries


def _my_labels(
    session: Session, ids: Sequence[int], user_id: int
) -> dict[int, tuple[int, int, list[int]]]:
    """Per project: my labels, how many were rejected, and their durations (for the median)."""
    query = select(Annotation.project_id, Annotation.review_status, Annotation.duration_ms).where(
        Annotation.project_id.in_(ids), Annotation.user_id == user_id
    )
    figures: dict[int, tuple[int, int, list[int]]] = {}
    for pid, status, duration in session.execute(query):
        count, rejected, durations = figures.get(pid, (0, 0, []))
        if duration is not None:
            durations.append(duration)
        figures[pid] = (count + 1, rejected + (status is ReviewStatus.rejected), durations)
    return figures


def _my_skipped(session: Session, ids: Sequence[int], user_id: int) -> dict[int, int]:
    query = (
        select(Assignment.project_id, func.count())
        .where(
            Assignment.project_id.in_(ids),
            Assignment.user_id == user_id,
            Assignment.status == AssignmentStatus.skipped,
        )
        .group_by(Assignment.project_id)
    )
    return dict(session.execute(query).all())


def _reviews_waiting(session: Session, ids: Sequence[int], user_id: int) -> dict[int, int]:
    query = (
        select(Review.project_id, func.count())
        .join(Annotation, Annotation.id == Review.annotation_id)
        .where(
            Review.project_id.in_(ids),
            Review.decision.is_(None),
            Annotation.user_id != user_id,
        )
        .group_by(Review.project_id)
    )
    return dict(session.execute(query).all())


def _median(values: list[int]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle] / 1000
    return (ordered[middle - 1] + ordered[middle]) / 2000


@dataclass(frozen=True)
class AnnotatorLabels:
    annotator: str  # pseudonym
    labels: int
    rejected: int


@dataclass(frozen=True)
class LowTask:
    task_id: int
    external_id: str | None
    labels: int
    agreement: float
    confidence: float | None  # of the crowd's aggregated answer, its least sure question


@dataclass(frozen=True)
class Overview:
    stats: ProjectStats
    throughput_unit: str
    throughput: list[tuple[datetime, int]]
    annotators: list[AnnotatorLabels]
    agreement: list[figures.QuestionAgreement]
    confusions: list[figures.Confusion]
    lowest: list[LowTask]
    reviews: dict[str, int]


def project_overview(session: Session, project: Project) -> Overview:
    """Everything the dashboard shows, in a fixed number of queries whatever the project's size.

    Agreement, confusion and the lowest-agreement tasks use the labels that count, as the
    export does: not rejected by a reviewer, not of an annotator paused in the project.
    Throughput and per-annotator counts keep every label. The labels are read once, so this is
    for dashboards, not for 100M-label projects.
    """
    schema = schema_of(project)
    rows = session.execute(
        select(
            Annotation.task_id,
            User.pseudonym,
            Annotation.answers,
            Annotation.submitted_at,
            Annotation.review_status,
            usable_label(),
        )
        .join(User, User.id == Annotation.user_id)
        .where(Annotation.project_id == project.id)
        .order_by(Annotation.id)
    ).all()
    labels = _by_question(schema, rows)
    gold = _gold(session, project.id)
    choice = [q for q in schema.questions if isinstance(q, ChoiceQuestion)]
    unit, buckets = figures.throughput([row[3] for row in rows])
    low = figures.lowest(figures.task_agreement(schema.questions, labels))
    external = _external_ids(session, [t.task_id for t in low])
    sure = _confidence(session, project, [t.task_id for t in low])
    return Overview(
        stats=project_stats(session, project),
        throughput_unit=unit,
        throughput=buckets,
        annotators=_per_annotator(rows),
        agreement=[figures.agreement(q, labels[q.name]) for q in schema.questions],
        confusions=[
            figures.confusion(q, labels[q.name], {t: g.get(q.name) for t, g in gold.items()})
            for q in choice
        ],
        lowest=[
            LowTask(t.task_id, external.get(t.task_id), t.labels, t.agreement, sure[t.task_id])
            for t in low
        ],
        reviews=_review_counts(session, project.id),
    )


def agreement(session: Session, project: Project) -> list[figures.QuestionAgreement]:
    """Agreement per question over the labels that count (as the dashboard)."""
    schema = schema_of(project)
    rows = session.execute(
        select(Annotation.task_id, User.pseudonym, Annotation.answers, Annotation.review_status)
        .join(User, User.id == Annotation.user_id)
        .where(Annotation.project_id == project.id, usable_label())
        .order_by(Annotation.id)
    ).all()
    labels = _by_question(
        schema, [(task, who, answers, None, status, True) for task, who, answers, status in rows]
    )
    return [figures.agreement(q, labels[q.name]) for q in schema.questions]


def _by_question(
    schema: QuestionSchema, rows: Sequence[tuple[int, str, Any, Any, ReviewStatus, bool]]
) -> dict[str, list[figures.Label]]:
    """Each question's answers in ``(task, pseudonym, answers, _, review status, usable)``
    rows, leaving out labels a reviewer rejected and those of paused annotators."""
    return {
        q.name: [
            figures.Label(task, who, answers[q.name])
            for task, who, answers, _, status, usable in rows
            if usable and status is not ReviewStatus.rejected and answers.get(q.name) is not None
        ]
        for q in schema.questions
    }


def _per_annotator(
    rows: Sequence[tuple[int, str, Any, datetime, ReviewStatus, bool]],
) -> list[AnnotatorLabels]:
    counts: Counter[str] = Counter(row[1] for row in rows)
    rejected: Counter[str] = Counter(row[1] for row in rows if row[4] is ReviewStatus.rejected)
    return [
        AnnotatorLabels(name, n, rejected[name])
        for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _gold(session: Session, project_id: int) -> dict[int, dict[str, Any]]:
    query = select(Task.id, Task.gold).where(Task.project_id == project_id, Task.gold.is_not(None))
    return {task_id: gold for task_id, gold in session.execute(query) if gold}


def _confidence(
    session: Session, project: Project, task_ids: Sequence[int]
) -> dict[int, float | None]:
    """How sure the crowd's aggregated answer of each task is (its least sure question).

    Gold is not clamped (every gold task would read 100% however its labels disagree) but, as
    in the export, calibrates the confidences once 10 labelled tasks have gold for a question.
    """
    if not task_ids:
        return {}
    aggregate = aggregation.aggregate_project(session, project, use_gold=False)
    positions = aggregate.positions(task_ids)
    lowest = aggregate.min_confidence()
    return {
        task_id: None if position < 0 or math.isnan(lowest[position]) else float(lowest[position])
        for task_id, position in zip(task_ids, positions.tolist(), strict=True)
    }


def _external_ids(session: Session, task_ids: Sequence[int]) -> dict[int, str | None]:
    if not task_ids:
        return {}
    query = select(Task.id, Task.external_id).where(Task.id.in_(task_ids))
    return dict(session.execute(query).all())


def _review_counts(session: Session, project_id: int) -> dict[str, int]:
    query = (
        select(Annotation.review_status, func.count())
        .where(Annotation.project_id == project_id)
        .group_by(Annotation.review_status)
    )
    return {status.value: count for status, count in session.execute(query)}
