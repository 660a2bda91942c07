"""The reviewer's pages: the queue, one review at a time, and sending annotations to review."""

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from quorum.db.models import Annotation, Project, Review, ReviewDecision, ReviewSource, User
from quorum.domain import policies, projects, reviews
from quorum.domain.errors import Invalid
from quorum.domain.projects import ProjectAccess, schema_of
from quorum.domain.reviews import QueueItem
from quorum.web.answers import answer_views
from quorum.web.auth import safe_next
from quorum.web.deps import CurrentUser, PageId, PostedForm, SessionDep, flash, render
from quorum.web.questions import answers_from_form, views

router = APIRouter()
DONE = {
    ReviewDecision.accepted: "Accepted.",
    ReviewDecision.rejected: "Rejected; the annotator sees your comment.",
    ReviewDecision.corrected: "Corrected.",
}


def reviewing(session: SessionDep, user: User, project_id: int) -> ProjectAccess:
    seen = projects.access(session, user, project_id)
    policies.authorize(user, policies.can_review(seen.role), "only reviewers and owners review")
    return seen


SOURCES = {
    ReviewSource.flagged: "Flagged by the quality loop",
    ReviewSource.sampled: "Sampled for review",
    ReviewSource.manual: "Sent by a person",
}
# Spam flags join their reasons with "; " and each starts with its signal ("too fast: ...").
NEXT_REASON = re.compile(r"; (?=[a-z][a-z -]*: )")
QUEUE_SHOWN = 20


def reasons_of(reason: str) -> list[str]:
    """A review's reason as the separate reasons it holds.

    >>> reasons_of("too fast: 1.0 s; straight-lining: 'yes' on 10 tasks in a row; 90% say it")
    ['too fast: 1.0 s', "straight-lining: 'yes' on 10 tasks in a row; 90% say it"]
    """
    return [part for part in NEXT_REASON.split(reason.strip()) if part]


@dataclass(frozen=True)
class Waiting:
    """A pending review in the queue's overview."""

    review_id: int
    source: ReviewSource
    reasons: list[str]
    requested_at: datetime


def waiting_list(session: Session, project: Project, reviewer: User) -> list[Waiting]:
    """The oldest pending reviews ``reviewer`` may decide, with why each is there."""
    query = (
        select(Review.id, Review.source, Review.reason, Review.requested_at)
        .join(Annotation, Annotation.id == Review.annotation_id)
        .where(
            Review.project_id == project.id,
            Review.decision.is_(None),
            Annotation.user_id != reviewer.id,
        )
        .order_by(Review.id)
        .limit(QUEUE_SHOWN)
    )
    return [
        Waiting(review_id, source, reasons_of(reason), requested_at)
        for review_id, source, reason, requested_at in session.execute(query)
    ]


def review_context(
    session: SessionDep, project: Project, item: QueueItem | None, user: User
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "project": project,
        "item": item,
        "waiting": reviews.pending_count(session, project, user),
        "queue": waiting_list(session, project, user),
        "sources": SOURCES,
    }
    if item is None:
        return context
    context["reasons"] = reasons_of(item.review.reason)
    schema, data = schema_of(project), item.task.data
    context |= {
        "fields": [(name.replace("_", " ").capitalize(), value) for name, value in data.items()],
        "mine": answer_views(schema, data, item.annotation.answers),
        "others": [(o, answer_views(schema, data, o.annotation.answers)) for o in item.others],
        "gold": answer_views(schema, data, item.task.gold) if item.task.gold else None,
        "questions": views(schema, data, item.annotation.answers),
    }
    return context


@router.get("/projects/{project_id}/review", name="web_review_queue")
def queue(
    project_id: PageId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    after: int | None = None,
) -> Response:
    seen = reviewing(session, user, project_id)
    item = reviews.next_in_queue(session, seen.project, user, after=after)
    if item is None and after is not None:  # wrapped past the end: start again from the oldest
        item = reviews.next_in_queue(session, seen.project, user)
    return render(request, "review.html", review_context(session, seen.project, item, user))


@router.get("/projects/{project_id}/reviews/{review_id}", name="web_review_one")
def review_page(
    project_id: PageId, review_id: PageId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    seen = reviewing(session, user, project_id)
    item = reviews.get_pending(session, seen.project, review_id)
    return render(request, "review.html", review_context(session, seen.project, item, user))


@router.post("/projects/{project_id}/reviews/{review_id}", name="web_decide_review")
def decide(
    project_id: PageId,
    review_id: PageId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    form: PostedForm,
    decision: Annotated[ReviewDecision, Form()],
    comment: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    seen = reviewing(session, user, project_id)
    try:
        corrected = decision is ReviewDecision.corrected
        answers = _correction(form, seen.project) if corrected else None
        reviews.decide(
            session,
            seen.project,
            seen.role,
            review_id,
            user,
            decision=decision,
            comment=comment,
            answers=answers,
        )
    except Invalid as error:
        session.rollback()
        item = reviews.get_pending(session, seen.project, review_id)
        context = review_context(session, seen.project, item, user)
        context |= {"problems": error.details, "comment": comment}
        return render(request, "review.html", context, status_code=422)
    flash(request, DONE[decision], "ok")
    return RedirectResponse(f"/projects/{project_id}/review", status_code=303)


def _correction(form: FormData, project: Project) -> Any:
    """The corrected answers: JSON from the page's script, else the plain form's fields."""
    raw = form.get("answers_json")
    if isinstance(raw, str) and raw:
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise Invalid.one("answers", "is not valid JSON") from None
    return answers_from_form(schema_of(project), form)


@router.post("/projects/{project_id}/annotations/{annotation_id}/review", name="web_send_to_review")
def send_to_review(
    project_id: PageId,
    annotation_id: PageId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    reason: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    seen = projects.access(session, user, project_id)
    policies.authorize(user, policies.can_send_to_review(seen.role), "only reviewers and owners")
    annotation = reviews.get_annotation(session, seen.project, annotation_id)
    reviews.send_to_review(
        session, annotation, source=ReviewSource.manual, reason=reason or "sent by hand", by=user
    )
    flash(request, f"Annotation {annotation_id} is in the review queue.", "ok")
    return RedirectResponse(safe_next(next or f"/projects/{project_id}/annotations"), 303)
