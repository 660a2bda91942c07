"""Project members and their roles (owners; admins everywhere)."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from quorum.db.models import Role
from quorum.domain import policies, projects, workforce
from quorum.domain.errors import Conflict, Invalid, NotFound
from quorum.web.deps import CurrentUser, PageId, SessionDep, flash, render

router = APIRouter()


def _managed(session: SessionDep, user: CurrentUser, project_id: int) -> projects.ProjectAccess:
    seen = projects.access(session, user, project_id)
    policies.authorize(
        user, policies.can_manage_project(seen.role), "only the project's owners manage members"
    )
    return seen


@router.get("/projects/{project_id}/members", name="web_members")
def members_page(
    project_id: PageId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    seen = _managed(session, user, project_id)
    page = projects.list_members(session, seen.project, cursor=None, limit=1000)
    context = {
        "project": seen.project,
        "members": page.items,
        "roles": list(Role),
        "domains": workforce.domains_of(session, [m.user_id for m in page.items]),
    }
    return render(request, "members.html", context)


@router.post("/projects/{project_id}/members", name="web_add_member")
def add_member(
    project_id: PageId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    email: Annotated[str, Form(max_length=320)],
    role: Annotated[Role, Form()],
) -> Response:
    seen = _managed(session, user, project_id)
    try:
        membership, created = projects.add_member(session, seen.project, email, role)
    except (NotFound, Invalid, Conflict) as error:
        session.rollback()
        flash(request, error.message, "error")
    else:
        verb = "added as" if created else "is now"
        flash(request, f"{membership.user.email} {verb} {role.value}.", "ok")
    return RedirectResponse(f"/projects/{project_id}/members", status_code=303)


@router.post("/projects/{project_id}/members/{user_id}/remove", name="web_remove_member")
def remove_member(
    project_id: PageId, user_id: PageId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    seen = _managed(session, user, project_id)
    try:
        projects.remove_member(session, seen.project, user_id)
    except (NotFound, Conflict) as error:
        session.rollback()
        flash(request, error.message, "error")
    else:
        flash(request, "Member removed.", "ok")
    return RedirectResponse(f"/projects/{project_id}/members", status_code=303)
