"""Grading labels against gold: hidden gold, qualification tasks, and reviewers' corrections.

A label is right when it matches the reference on every question the reference covers that can
be graded: choice, preference and rating answers equal; multi_choice the same set of options;
ranking the same order; spans the same set of ``(start, end, label)``. Free text is never
graded (no one right wording); a reference covering only text grades nothing.

Outcomes (``quality_outcomes``) are written once per label and source, so grading again is a
no-op; trust and auto-pause read them (``quorum.domain.trust``).
"""

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quorum.db.models import Annotation, OutcomeSource, Project, QualityOutcome, Task
from quorum.db.types import utcnow
from quorum.domain.projects import schema_of
from quorum.domain.questions import QuestionSchema

UNGRADED = {"text"}


def _normal(kind: str, value: Any) -> Any:
    if kind == "multi_choice":
        return frozenset(value)
    if kind == "spans":
        return frozenset((span["start"], span["end"], span["label"]) for span in value)
    if kind == "ranking":
        return tuple(value)
    return value


def matches(
    schema: QuestionSchema, answers: Mapping[str, Any], reference: Mapping[str, Any]
) -> bool | None:
    """Whether ``answers`` agree with ``reference`` on every gradeable question it covers;
    None when it covers none (nothing to grade)."""
    graded = False
    for question in schema.questions:
        expected = reference.get(question.name)
        if expected is None or question.kind in UNGRADED:
            continue
        graded = True
        given = answers.get(question.name)
        if given is None or _normal(question.kind, given) != _normal(question.kind, expected):
            return False
    return True if graded else None


@dataclass(frozen=True)
class Graded:
    annotation_id: int
    user_id: int
    task_id: int
    correct: bool


def grade_gold(
    session: Session,
    project: Project,
    annotation_ids: Collection[int],
    *,
    qualification_last: int = 0,
    now: datetime | None = None,
) -> list[Graded]:
    """Grade these annotations of the project that are on gold tasks, and record the outcomes
    (source ``qualification`` for tasks up to ``qualification_last``, else ``gold``)."""
    if not annotation_ids:
        return []
    query = (
        select(Annotation.id, Annotation.user_id, Annotation.task_id, Annotation.answers, Task.gold)
        .join(Task, Task.id == Annotation.task_id)
        .where(
            Annotation.project_id == project.id,
            Annotation.id.in_(list(annotation_ids)),
            Task.gold.is_not(None),
        )
    )
    schema = schema_of(project)
    graded = []
    for annotation_id, user_id, task_id, answers, gold in session.execute(query):
        verdict = matches(schema, answers, gold or {})
        if verdict is not None:
            graded.append(Graded(annotation_id, user_id, task_id, verdict))
    qualifying = [item for item in graded if item.task_id <= qualification_last]
    hidden = [item for item in graded if item.task_id > qualification_last]
    record(session, project.id, qualifying, OutcomeSource.qualification, now=now)
    record(session, project.id, hidden, OutcomeSource.gold, now=now)
    return graded


def record(
    session: Session,
    project_id: int,
    graded: Iterable[Graded],
    source: OutcomeSource,
    *,
    now: datetime | None = None,
    replace: bool = False,
) -> int:
    """Store outcomes not stored yet for this source (``replace``: overwrite them, as a new
    review decision does). Returns how many were written."""
    items = list(graded)
    if not items:
        return 0
    ids = [item.annotation_id for item in items]
    existing = {
        outcome.annotation_id: outcome
        for outcome in session.scalars(
            select(QualityOutcome).where(
                QualityOutcome.annotation_id.in_(ids), QualityOutcome.source == source.value
            )
        )
    }
    written = 0
    for item in items:
        found = existing.get(item.annotation_id)
        if found is not None:
            if replace and found.correct != item.correct:
                found.correct, found.created_at = item.correct, now or utcnow()
                written += 1
            continue
        session.add(
            QualityOutcome(
                project_id=project_id,
                user_id=item.user_id,
                annotation_id=item.annotation_id,
                source=source.value,
                correct=item.correct,
                created_at=now or utcnow(),
            )
        )
        written += 1
    session.flush()
    return written
