"""The projects list: every member's start page, with progress and their own figures."""

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from quorum.domain import dashboard, policies, reviews
from quorum.web.deps import CurrentUser, OptionalUser, SessionDep, render

router = APIRouter()


@router.get("/", name="web_home")
def home(user: OptionalUser) -> Response:
    return RedirectResponse("/projects" if user else "/sign-in", status_code=303)


@router.get("/projects", name="web_projects")
def projects_page(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    summaries = dashboard.my_projects(session, user)
    rows = [
        {
            "s": s,
            "label": policies.can_annotate(s.role)(user),
            "review": policies.can_review(s.role)(user),
            "dashboard": policies.can_view_dashboard(s.role)(user),
            "manage": policies.can_manage_project(s.role)(user),
        }
        for s in summaries
    ]
    feedback = reviews.feedback_for(session, user, limit=5)
    return render(request, "projects.html", {"rows": rows, "feedback": feedback})
