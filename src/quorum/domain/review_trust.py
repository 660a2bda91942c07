"""Reviewers' decisions as evidence for trust (``quorum.domain.trust``).

An accepted label counts as right and a rejected one as wrong. A correction is a reviewer's
full answer and counts as gold: the corrected label is graded against it (right when the
correction changed nothing gradeable), and so is every other label of that task that no review
graded yet. A later decision on the same label replaces the earlier one's outcome. The
annotators concerned are then checked for auto-pause.

Labels on gold tasks are reviewed like the others (review sampling does not tell them apart),
but their decisions add no outcome: the gold already graded them, and one label must not count
twice.
"""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from quorum.db.models import Annotation, OutcomeSource, Project, Review, ReviewDecision, Task
from quorum.domain import gold, pause
from quorum.domain.projects import schema_of


def record_decision(
    session: Session, project: Project, review: Review, annotation: Annotation, now: datetime
) -> None:
    """Turn a decided review into outcomes, then check those annotators for auto-pause."""
    if session.scalar(select(Task.gold.is_not(None)).where(Task.id == annotation.task_id)):
        return
    schema = schema_of(project)
    decision = review.decision
    if decision is ReviewDecision.corrected and review.corrected_answers is not None:
        verdict = gold.matches(schema, annotation.answers, review.corrected_answers)
    else:
        verdict = decision is ReviewDecision.accepted
    graded = []
    if verdict is not None:
        graded.append(gold.Graded(annotation.id, annotation.user_id, annotation.task_id, verdict))
        gold.record(session, project.id, graded, OutcomeSource.review, now=now, replace=True)
    others: list[gold.Graded] = []
    if decision is ReviewDecision.corrected and review.corrected_answers is not None:
        rows = session.execute(
            select(Annotation.id, Annotation.user_id, Annotation.answers).where(
                Annotation.task_id == annotation.task_id, Annotation.id != annotation.id
            )
        )
        for other_id, user_id, answers in rows:
            right = gold.matches(schema, answers, review.corrected_answers)
            if right is not None:
                others.append(gold.Graded(other_id, user_id, annotation.task_id, right))
        gold.record(session, project.id, others, OutcomeSource.review, now=now)
    users = {item.user_id for item in graded + others}
    pause.check(session, project, users, now=now)
