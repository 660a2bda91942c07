"""The labeling workbench: lease a task, answer it, submit or skip, and on to the next.

With JavaScript the page swaps tasks in place (``label.js`` posts JSON and receives the next
task as HTML); without it the same form posts and redirects to the next task.
"""

import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from quorum.db.models import AssignmentStatus, Project, User
from quorum.db.types import utcnow
from quorum.domain import assignments, policies, projects, tasks
from quorum.domain.assignments import Lease
from quorum.domain.errors import Conflict, Invalid, NotFound, Problem
from quorum.domain.lease_rules import task_ref
from quorum.domain.projects import policy_of, schema_of
from quorum.web.deps import (
    CurrentUser,
    PageId,
    SessionDep,
    flash,
    render,
    render_fragment,
    wants_json,
)
from quorum.web.own_quality import recent_checks, standing_note
from quorum.web.questions import answers_from_form, context_fields, views

router = APIRouter()
MAX_DURATION_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class Submission:
    """A submission as posted: JSON from the workbench script, or the plain form."""

    answers: Any = None
    form: FormData | None = None
    duration_ms: int | None = None
    key: str | None = None


async def read_submission(request: Request) -> Submission:
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            raise Invalid.one("body", "is not valid JSON") from None
        if not isinstance(body, dict):
            raise Invalid.one("body", "must be an object {answers, duration_ms}")
        return Submission(
            answers=body.get("answers"),
            duration_ms=_duration(body.get("duration_ms")),
            key=_key(request.headers.get("idempotency-key")),
        )
    form = await request.form()
    key = form.get("idempotency_key")
    # NOTE: no duration for plain forms: it would differ on a resubmission, and a different
    # body under the same Idempotency-Key is refused rather than replayed.
    return Submission(form=form, key=_key(key if isinstance(key, str) else None))


def _duration(raw: Any) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_DURATION_MS:
        raise Invalid.one("duration_ms", "must be a whole number of milliseconds")
    return raw


def _key(raw: str | None) -> str | None:
    if raw is None or raw == "":
        return None
    if len(raw) > 200:
        raise Invalid.one("Idempotency-Key", "must have 1 to 200 characters")
    return raw


SubmissionDep = Annotated[Submission, Depends(read_submission)]


def _labeling_project(session: SessionDep, user: CurrentUser, project_id: int) -> Project:
    seen = projects.access(session, user, project_id)
    policies.authorize(
        user, policies.can_annotate(seen.role), "only members of the project label it"
    )
    return seen.project


def task_context(
    project: Project,
    lease: Lease,
    *,
    answers: dict[str, Any] | None = None,
    problems: list[Problem] | None = None,
    own: dict[str, Any] | None = None,
) -> dict[str, Any]:
    schema = schema_of(project)
    left = (lease.assignment.expires_at - utcnow()).total_seconds()
    return {
        "project": project,
        "kinds": _kinds(project),
        "lease": lease,
        "questions": views(schema, lease.task.data, answers),
        "fields": context_fields(schema, lease.task.data),
        "seconds_left": max(0, int(left)),
        "idempotency_key": secrets.token_urlsafe(18),
        "shown_at": int(time.time() * 1000),
        "problems": problems or [],
        **(own or {}),
    }


def own_standing(session: Session, project: Project, user: User) -> dict[str, Any]:
    """What the annotator is told of their own standing and checks (``web.own_quality``):
    from their standing and past labels, never from the task on screen."""
    return {
        "note": standing_note(session, project, user),
        "checks": recent_checks(session, project, user),
    }


@router.get("/projects/{project_id}/label", name="web_label")
def label_page(
    project_id: PageId, request: Request, session: SessionDep, user: CurrentUser, done: bool = False
) -> Response:
    """The workbench; its script leases the first task at once (a GET never takes a lease)."""
    project = _labeling_project(session, user, project_id)
    context = {
        "project": project,
        "lease": None,
        "started": done,
        "kinds": _kinds(project),
        **own_standing(session, project, user),
    }
    return render(request, "label.html", context)


def _kinds(project: Project) -> set[str]:
    """The question kinds of the project, so the keys panel lists only the keys that apply."""
    return {question.kind for question in schema_of(project).questions}


@router.post("/projects/{project_id}/label/next", name="web_label_next")
def next_task(
    project_id: PageId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    """Lease the next task (or get back the one held); JSON for the script, else a redirect."""
    project = _labeling_project(session, user, project_id)
    lease = assignments.lease(session, project, user)
    if wants_json(request):
        own = own_standing(session, project, user)
        return JSONResponse(_workbench(request, project, lease, own))
    return _to_lease(project, lease)


def _workbench(
    request: Request, project: Project, lease: Lease | None, own: dict[str, Any]
) -> dict[str, Any]:
    if lease is None:
        context = {"project": project, "started": True, **own}
        html = render_fragment(request, "_no_task.html", context)
        return {"assignment_id": None, "html": html}
    context = task_context(project, lease, own=own)
    return {
        "assignment_id": lease.assignment.id,
        "seconds_left": context["seconds_left"],
        "url": request.app.url_path_for(
            "web_label_assignment",
            project_id=str(project.id),
            assignment_id=str(lease.assignment.id),
        ),
        "html": render_fragment(request, "_task.html", context),
    }


def _to_lease(project: Project, lease: Lease | None) -> Response:
    if lease is None:
        return RedirectResponse(f"/projects/{project.id}/label?done=1", status_code=303)
    return RedirectResponse(f"/projects/{project.id}/label/{lease.assignment.id}", status_code=303)


@router.get("/projects/{project_id}/label/{assignment_id}", name="web_label_assignment")
def assignment_page(
    project_id: PageId,
    assignment_id: PageId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
) -> Response:
    """A held lease, rendered in full: the page a reload or a browser without scripts shows."""
    project = _labeling_project(session, user, project_id)
    assignment = assignments.get(session, assignment_id)
    policies.reveal(user, policies.can_submit(assignment), f"assignment {assignment_id}")
    if assignment.project_id != project.id:
        raise NotFound(f"no assignment {assignment_id}")
    if assignment.status is not AssignmentStatus.leased:
        flash(request, f"That task is {assignment.status.value}; here is the next one.")
        return RedirectResponse(f"/projects/{project.id}/label", status_code=303)
    lease = Lease(assignment, tasks.get(session, assignment.task_id))
    context = task_context(project, lease, own=own_standing(session, project, user))
    return render(request, "label.html", context | {"started": True})


@router.post("/assignments/{assignment_id}/submit", name="web_submit_answers")
def submit(
    assignment_id: PageId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    submission: SubmissionDep,
) -> Response:
    assignment = assignments.get(session, assignment_id)
    policies.reveal(user, policies.can_submit(assignment), f"assignment {assignment_id}")
    project = _labeling_project(session, user, assignment.project_id)
    if submission.form is None:  # the script: errors go back as JSON, the answer stays on screen
        annotation = assignments.submit(
            session,
            assignment_id,
            user,
            submission.answers,
            duration_ms=submission.duration_ms,
            key=submission.key,
        )
        hides = policy_of(project).gold_rate > 0
        ref = task_ref(annotation.task_id, annotation.assignment_id, hides)
        return JSONResponse({"annotation_id": annotation.id, "task_id": ref})
    answers: dict[str, Any] = {}
    try:
        answers = answers_from_form(schema_of(project), submission.form)
        assignments.submit(session, assignment_id, user, answers, key=submission.key)
    except Invalid as error:
        session.rollback()
        lease = Lease(assignment, tasks.get(session, assignment.task_id))
        own = own_standing(session, project, user)
        context = task_context(project, lease, answers=answers, problems=error.details, own=own)
        return render(request, "label.html", context | {"started": True}, status_code=422)
    except Conflict as error:
        session.rollback()
        flash(request, error.message, "error")
        return RedirectResponse(f"/projects/{project.id}/label", status_code=303)
    flash(request, "Saved.")
    return _to_lease(project, assignments.lease(session, project, user))


@router.post("/assignments/{assignment_id}/skip", name="web_skip_task")
def skip(
    assignment_id: PageId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    held = assignments.get(session, assignment_id)
    policies.reveal(user, policies.can_submit(held), f"assignment {assignment_id}")
    assignment = assignments.skip(session, assignment_id, user)
    project = _labeling_project(session, user, assignment.project_id)
    if wants_json(request):
        return JSONResponse({"skipped": assignment.id})
    flash(request, "Skipped.")
    return _to_lease(project, assignments.lease(session, project, user))
