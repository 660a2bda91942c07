"""Projects, their members and their figures."""

from fastapi import APIRouter, Response, status

from quorum.api.deps import CurrentUser, SessionDep
from quorum.api.quality_schemas import TrustPublic
from quorum.api.schemas import (
    Cursor,
    Id,
    Limit,
    ListOf,
    MemberCreate,
    MemberPublic,
    ProjectCreate,
    ProjectPublic,
    ProjectUpdate,
    StatsPublic,
)
from quorum.db.models import Membership, Project, Role
from quorum.domain import dashboard, policies, projects, quality_report, stats
from quorum.domain.projects import ProjectAccess

router = APIRouter(tags=["projects"])


def _public(project: Project, role: Role | None) -> ProjectPublic:
    return ProjectPublic.model_validate(
        {
            "id": project.id,
            "name": project.name,
            "instructions": project.instructions,
            "schema": project.schema,
            "policy": project.policy,
            "role": role,
            "created_at": project.created_at,
            "updated_at": project.updated_at,
        }
    )


def _member(membership: Membership) -> MemberPublic:
    user = membership.user
    return MemberPublic(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=membership.role,
        created_at=membership.created_at,
    )


@router.post("/projects", status_code=status.HTTP_201_CREATED)
def create_project(body: ProjectCreate, session: SessionDep, user: CurrentUser) -> ProjectPublic:
    """Create a project; you become its owner."""
    project = projects.create(
        session,
        user,
        name=body.name,
        instructions=body.instructions,
        schema=body.questions.model_dump(mode="json", exclude_none=True),
        policy=body.policy.model_dump(mode="json"),
    )
    return _public(project, Role.owner)


@router.get("/projects")
def list_projects(
    session: SessionDep, user: CurrentUser, cursor: Cursor = None, limit: Limit = 100
) -> ListOf[ProjectPublic]:
    """The projects you are a member of (admins: all projects)."""
    page = projects.list_for(session, user, cursor=cursor, limit=limit)
    items = [_public(p, projects.role_of(session, p.id, user.id)) for p in page.items]
    return ListOf[ProjectPublic](items=items, next_cursor=page.next_cursor)


@router.get("/projects/{project_id}")
def read_project(project_id: Id, session: SessionDep, user: CurrentUser) -> ProjectPublic:
    """One project, with its schema and policy."""
    seen = projects.access(session, user, project_id)
    return _public(seen.project, seen.role)


@router.patch("/projects/{project_id}")
def update_project(
    project_id: Id, body: ProjectUpdate, session: SessionDep, user: CurrentUser
) -> ProjectPublic:
    """Change name, instructions, schema (only before any annotation) or policy (owners). The
    policy is merged: keys not given keep their values, a null clears an optional one."""
    seen = _managed(session, user, project_id)
    given = body.model_dump(mode="json", exclude_unset=True, by_alias=True)
    # A null inside the policy clears that key (merge patch); a null field here changes nothing.
    changes = {field: value for field, value in given.items() if value is not None}
    project = projects.update_project(session, seen.project, changes)
    return _public(project, seen.role)


@router.get("/projects/{project_id}/members")
def list_members(
    project_id: Id,
    session: SessionDep,
    user: CurrentUser,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> ListOf[MemberPublic]:
    """The project's members and their roles (owners and reviewers)."""
    seen = projects.access(session, user, project_id)
    policies.authorize(user, policies.can_review(seen.role))
    page = projects.list_members(session, seen.project, cursor=cursor, limit=limit)
    return ListOf[MemberPublic](
        items=[_member(m) for m in page.items], next_cursor=page.next_cursor
    )


@router.post(
    "/projects/{project_id}/members",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": MemberPublic, "description": "The member's role was changed"}},
)
def add_member(
    project_id: Id, body: MemberCreate, session: SessionDep, user: CurrentUser, response: Response
) -> MemberPublic:
    """Add an existing user to the project with a role, or change their role (owners)."""
    seen = _managed(session, user, project_id)
    membership, created = projects.add_member(session, seen.project, body.email, body.role)
    if not created:
        response.status_code = status.HTTP_200_OK
    return _member(membership)


@router.delete("/projects/{project_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(project_id: Id, user_id: Id, session: SessionDep, user: CurrentUser) -> None:
    """Remove a member (owners); the last owner cannot leave."""
    seen = _managed(session, user, project_id)
    projects.remove_member(session, seen.project, user_id)


@router.get("/projects/{project_id}/stats")
def read_stats(project_id: Id, session: SessionDep, user: CurrentUser) -> StatsPublic:
    """Progress, labels, agreement per question and each annotator's labels and trust (owners
    and reviewers)."""
    seen = projects.access(session, user, project_id)
    policies.authorize(user, policies.can_review(seen.role))
    figures = stats.project_stats(session, seen.project)
    quality = {
        a.annotator: a for a in quality_report.project_quality(session, seen.project).annotators
    }
    return StatsPublic.model_validate(
        {
            **{k: getattr(figures, k) for k in ("tasks", "complete", "open", "gold_tasks")},
            "labels": figures.labels,
            "live_leases": figures.live_leases,
            "work_tasks": figures.work.tasks,
            "work_complete": figures.work.complete,
            "progress": figures.progress,
            "agreement": [vars(a) for a in dashboard.agreement(session, seen.project)],
            "annotators": [
                {
                    **vars(a),
                    "trust": TrustPublic.of(quality[a.annotator].trust),
                    "paused": quality[a.annotator].paused,
                }
                for a in figures.annotators
            ],
        }
    )


def _managed(session: SessionDep, user: CurrentUser, project_id: Id) -> ProjectAccess:
    seen = projects.access(session, user, project_id)
    policies.authorize(
        user, policies.can_manage_project(seen.role), "only the project's owners may do this"
    )
    return seen
