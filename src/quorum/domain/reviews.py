"""Reviews: annotations sent to a reviewer, who accepts, rejects with a comment, or corrects.

An annotation's ``review_status`` says where it stands (none → pending → accepted, rejected or
corrected); ``reviews`` rows keep the history. Anything may send an annotation to review: a
person (``source=manual``), sampling at the policy's ``review_rate`` (``sampled``) or a spam
signal (``flagged``): a person through :func:`send_to_review`, the quality loop through
:func:`queue_for_review`. A correction is a full, validated answer, so the quality loop can use
it as gold; rejected labels are for aggregation to drop.

Money (docs/payments.md): a label's pay waits while it is in review. A person may send a
decided label again; a rejected one that earned then takes its pay out of the budget once more,
so it must fit the budget (``budget.admit_review_again``, 409 otherwise). The loop sends only
labels no one reviewed yet: a reviewer's decision stands against a sample or a flag that comes
after it.
"""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from quorum.db.models import (
    Annotation,
    Project,
    Review,
    ReviewDecision,
    ReviewSource,
    ReviewStatus,
    Role,
    Task,
    User,
)
from quorum.db.types import utcnow
from quorum.domain import budget, ledger, policies, review_trust
from quorum.domain.errors import Conflict, Invalid, NotFound
from quorum.domain.lease_rules import task_ref
from quorum.domain.projects import schema_of
from quorum.domain.questions import check_answers
from quorum.domain.text import refuse_nul

MAX_REASON = 500
MAX_COMMENT = 10_000


@dataclass(frozen=True)
class Labelled:
    """An annotation with its annotator's pseudonym (what reviewers see of people)."""

    annotation: Annotation
    annotator: str


@dataclass(frozen=True)
class QueueItem:
    review: Review
    annotation: Annotation
    annotator: str
    task: Task
    others: list[Labelled]  # the task's other annotations, oldest first


def send_to_review(
    session: Session,
    annotation: Annotation,
    *,
    source: ReviewSource,
    reason: str = "",
    by: User | None = None,
    now: datetime | None = None,
) -> Review:
    """Put ``annotation`` in its project's review queue; an already pending review is returned.
    Conflict when it was rejected and the project's budget has no room left to pay it again."""
    refuse_nul(reason, "reason")
    now = now or utcnow()
    budget.admit_review_again(session, annotation.id, now)
    pending = _pending_review(session, annotation.id)
    if pending is not None:
        return pending
    review = Review(
        project_id=annotation.project_id,
        annotation_id=annotation.id,
        source=source,
        reason=reason.strip()[:MAX_REASON],
        requested_by=by.id if by else None,
        requested_at=now,
        comment="",
    )
    session.add(review)
    annotation.review_status = ReviewStatus.pending
    try:
        session.flush()
    except IntegrityError:
        # NOTE: another request sent the same annotation a moment ago; the unique index on
        # pending reviews kept one, so that one is the answer.
        session.rollback()
        existing = _pending_review(session, annotation.id)
        if existing is None:
            raise
        return existing
    ledger.record_label(session, annotation.id, now=review.requested_at)  # its pay now waits
    session.commit()
    return review


@dataclass(frozen=True)
class ToReview:
    """An annotation the quality loop sends to review, and why."""

    annotation_id: int
    source: ReviewSource
    reason: str


def queue_for_review(session: Session, items: list[ToReview], *, now: datetime) -> int:
    """Send many annotations to review at once (the quality loop's flags and samples); only
    those never reviewed are queued: one waiting for a review is left as it is, and one a
    reviewer decided keeps the decision. The caller commits.

    NOTE: the insert skips conflicts on the unique index of pending reviews, so a reviewer
    sending the same annotation meanwhile is not an error; the ledger then moves the pay of
    each label that was queued, as ``send_to_review`` does. The label's row is locked and read
    afresh first, so a decision committed since the loop read it is seen.
    """
    queued = 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for item in sorted(items, key=lambda i: i.annotation_id):  # annotations in id order
        annotation = session.get(
            Annotation,
            item.annotation_id,
            with_for_update={"key_share": True},
            populate_existing=True,
        )
        if annotation is None or annotation.review_status is not ReviewStatus.none:
            continue
        made = session.execute(
            insert(Review)
            .values(
                project_id=annotation.project_id,
                annotation_id=annotation.id,
                source=item.source,
                reason=item.reason.strip()[:MAX_REASON],
                requested_at=now,
                comment="",
            )
            .on_conflict_do_nothing()
            .returning(Review.id)
        ).first()
        if made is None:
            continue
        annotation.review_status = ReviewStatus.pending
        session.flush()
        ledger.record_label(session, annotation.id, now=now)  # its pay now waits
        queued += 1
    return queued


def _pending_review(session: Session, annotation_id: int) -> Review | None:
    query = select(Review).where(Review.annotation_id == annotation_id, Review.decision.is_(None))
    return session.scalar(query)


def get_annotation(session: Session, project: Project, annotation_id: int) -> Annotation:
    annotation = session.get(Annotation, annotation_id)
    if annotation is None or annotation.project_id != project.id:
        raise NotFound(f"no annotation {annotation_id} in this project")
    return annotation


def pending_count(session: Session, project: Project, reviewer: User) -> int:
    """Reviews waiting in the project that ``reviewer`` may decide (not on their own labels)."""
    query = (
        select(func.count())
        .select_from(Review)
        .join(Annotation, Annotation.id == Review.annotation_id)
        .where(
            Review.project_id == project.id,
            Review.decision.is_(None),
            Annotation.user_id != reviewer.id,
        )
    )
    return session.scalar(query) or 0


def next_in_queue(
    session: Session, project: Project, reviewer: User, *, after: int | None = None
) -> QueueItem | None:
    """The oldest pending review ``reviewer`` may decide, after review id ``after`` if given."""
    query = (
        select(Review, Annotation, Task, User.pseudonym)
        .join(Annotation, Annotation.id == Review.annotation_id)
        .join(Task, Task.id == Annotation.task_id)
        .join(User, User.id == Annotation.user_id)
        .where(
            Review.project_id == project.id,
            Review.decision.is_(None),
            Annotation.user_id != reviewer.id,
        )
        .order_by(Review.id)
        .limit(1)
    )
    if after is not None:
        query = query.where(Review.id > after)
    row = session.execute(query).first()
    if row is None:
        return None
    review, annotation, task, pseudonym = row
    others = [
        item for item in task_annotations(session, task.id) if item.annotation.id != annotation.id
    ]
    return QueueItem(review, annotation, pseudonym, task, others)


def get_pending(session: Session, project: Project, review_id: int) -> QueueItem:
    """One pending review of the project, for the page that decides it."""
    review = session.get(Review, review_id)
    if review is None or review.project_id != project.id:
        raise NotFound(f"no review {review_id} in this project")
    annotation = session.get(Annotation, review.annotation_id)
    task = session.get(Task, annotation.task_id) if annotation else None
    assert annotation is not None and task is not None, "foreign keys keep both"
    labelled = task_annotations(session, task.id)
    mine = next(item for item in labelled if item.annotation.id == annotation.id)
    others = [item for item in labelled if item.annotation.id != annotation.id]
    return QueueItem(review, annotation, mine.annotator, task, others)


def task_annotations(session: Session, task_id: int) -> list[Labelled]:
    query = (
        select(Annotation, User.pseudonym)
        .join(User, User.id == Annotation.user_id)
        .where(Annotation.task_id == task_id)
        .order_by(Annotation.id)
    )
    return [Labelled(annotation, pseudonym) for annotation, pseudonym in session.execute(query)]


def latest_reviews(session: Session, annotation_ids: Collection[int]) -> dict[int, Review]:
    """The most recent review of each of these annotations that has one."""
    if not annotation_ids:
        return {}
    newest = (
        select(func.max(Review.id))
        .where(Review.annotation_id.in_(annotation_ids))
        .group_by(Review.annotation_id)
    )
    rows = session.scalars(select(Review).where(Review.id.in_(newest)))
    return {review.annotation_id: review for review in rows}


def decide(
    session: Session,
    project: Project,
    role: Role | None,
    review_id: int,
    reviewer: User,
    *,
    decision: ReviewDecision,
    comment: str = "",
    answers: Any = None,
    now: datetime | None = None,
) -> Review:
    """Record a reviewer's decision on a pending review, once.

    A rejection needs a comment (the annotator's feedback); a correction needs answers valid
    for the task, which replace nothing: the annotation keeps what the annotator submitted.
    """
    refuse_nul(comment, "comment")
    review = session.scalar(select(Review).where(Review.id == review_id).with_for_update())
    if review is None or review.project_id != project.id:
        raise NotFound(f"no review {review_id} in this project")
    annotation = session.get(Annotation, review.annotation_id)
    assert annotation is not None, "reviews cascade with their annotation"
    policies.authorize(
        reviewer,
        policies.can_decide_review(role, annotation.user_id),
        "reviewers decide on other people's annotations, not their own",
    )
    if review.decision is not None:
        raise Conflict(f"review {review_id} was already decided: {review.decision.value}")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise Invalid.one("comment", f"allows at most {MAX_COMMENT} characters")
    if decision is ReviewDecision.rejected and not comment:
        raise Invalid.one("comment", "say why the annotation is rejected; the annotator sees it")
    if decision is ReviewDecision.corrected:
        task = session.get(Task, annotation.task_id)
        assert task is not None
        review.corrected_answers = check_answers(schema_of(project), task.data, answers)
    review.decision = decision
    review.comment = comment
    review.reviewer_id = reviewer.id
    review.decided_at = now or utcnow()
    annotation.review_status = ReviewStatus(decision.value)
    session.flush()
    ledger.record_label(session, annotation.id, now=review.decided_at)  # released or reversed
    review_trust.record_decision(session, project, review, annotation, review.decided_at)
    session.commit()
    return review


@dataclass(frozen=True)
class Feedback:
    """What an annotator learns of a review of their label: never a corrected answer."""

    project: str
    task_id: int  # as the annotator saw it: their own handle where the project hides gold
    decision: ReviewDecision
    comment: str
    decided_at: datetime


def feedback_for(session: Session, annotator: User, *, limit: int = 10) -> list[Feedback]:
    """Decisions on ``annotator``'s own labels, newest first."""
    query = (
        select(
            Project.name,
            Project.policy,
            Annotation.task_id,
            Annotation.assignment_id,
            Review.decision,
            Review.comment,
            Review.decided_at,
        )
        .join(Annotation, Annotation.id == Review.annotation_id)
        .join(Project, Project.id == Review.project_id)
        .where(Annotation.user_id == annotator.id, Review.decision.is_not(None))
        .order_by(Review.decided_at.desc(), Review.id.desc())
        .limit(limit)
    )
    return [
        Feedback(name, _task_ref(policy, task_id, assignment_id), decision, comment, decided_at)
        for name, policy, task_id, assignment_id, decision, comment, decided_at in session.execute(
            query
        )
        if decision is not None and decided_at is not None
    ]


def _task_ref(policy: Any, task_id: int, assignment_id: int) -> int:
    """A review of a label on a hidden gold task must not tell it apart by its id."""
    hides = float((policy or {}).get("gold_rate") or 0) > 0
    return task_ref(task_id, assignment_id, hides)
