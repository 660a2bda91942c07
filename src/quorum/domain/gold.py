"""Grading labels against gold: hidden gold, qualification tasks, and reviewers' corrections.

A label is right when it matches the reference on every question the reference covers that can
be graded: choice, preference and rating answers equal; multi_choice the same set of options;
ranking the same order; spans the same set of ``(start, end, label)``. Free text is never
graded (no one right wording); a reference covering only text grades nothing.

Outcomes (``quality_outcomes``) are written once per label and source, so grading again is a
no-op; trust and auto-pause read them (``quorum.domain.trust``).

Feedback (:func:`feedback_for`): in a project whose policy sets ``gold_feedback``, an annotator
may read whether each of their graded checks was right, once the loop has graded it; never the
expected answer (gold stays secret, DESIGN §4), and never in the submit reply, which is the
same for every task.
"""

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, true
from sqlalchemy.orm import Session

from quorum.db.models import Annotation, OutcomeSource, Project, QualityOutcome, Task, User
from quorum.db.types import utcnow
from quorum.domain.lease_rules import task_ref
from quorum.domain.pages import Page, paginate
from quorum.domain.projects import schema_of
from quorum.domain.questions import QuestionSchema

UNGRADED = {"text"}
CHECKS = [OutcomeSource.gold.value, OutcomeSource.qualification.value]  # feedback on these


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


@dataclass(frozen=True)
class Feedback:
    """One graded check of the annotator's, as they may see it (module doc)."""

    id: int
    project_id: int
    assignment_id: int
    task_id: int  # the annotator's handle where the project hides gold
    correct: bool
    graded_at: datetime


def feedback_for(
    session: Session, annotator: User, *, cursor: str | None, limit: int
) -> Page[Feedback]:
    """The annotator's graded gold and qualification labels in projects with ``gold_feedback``,
    oldest first."""
    query = (
        select(QualityOutcome)
        .join(Project, Project.id == QualityOutcome.project_id)
        .where(
            QualityOutcome.user_id == annotator.id,
            QualityOutcome.source.in_(CHECKS),
            Project.policy["gold_feedback"].as_boolean() == true(),
        )
    )
    page = paginate(session, query, QualityOutcome.id, cursor, limit)
    ids = [outcome.annotation_id for outcome in page.items]
    rows = session.execute(
        select(Annotation.id, Annotation.assignment_id, Annotation.task_id, Project.policy)
        .join(Project, Project.id == Annotation.project_id)
        .where(Annotation.id.in_(ids or [0]))
    )
    labels = {row[0]: row for row in rows}
    items = []
    for outcome in page.items:
        _, assignment_id, task_id, policy = labels[outcome.annotation_id]
        hides = float((policy or {}).get("gold_rate") or 0) > 0
        handle = task_ref(task_id, assignment_id, hides)
        items.append(
            Feedback(
                outcome.id,
                outcome.project_id,
                assignment_id,
                handle,
                outcome.correct,
                outcome.created_at,
            )  # fmt: skip
        )
    return Page(items, page.next_cursor)
