"""The quality loop as owners, reviewers and annotators see it (docs/quality.md): each
annotator's trust and standing, owners' decisions on them, and an annotator's own trust."""

from fastapi import APIRouter

from quorum.api.deps import CurrentUser, SessionDep
from quorum.api.quality_schemas import (
    AnnotatorQualityPublic,
    DomainTrustPublic,
    FeedbackPublic,
    MyTrustPublic,
    PauseCreate,
    ProjectQualityPublic,
    ProjectTrustPublic,
    StandingPublic,
    TrustPublic,
)
from quorum.api.schemas import Cursor, Id, Limit, ListOf
from quorum.db.models import Project, User
from quorum.domain import gold, pause, policies, projects, qualification
from quorum.domain import quality_report as report
from quorum.domain.projects import ProjectAccess

router = APIRouter(tags=["quality"])


def _annotator(a: report.AnnotatorQuality) -> AnnotatorQualityPublic:
    return AnnotatorQualityPublic(
        user_id=a.user_id,
        annotator=a.annotator,
        tier=a.tier,
        labels=a.labels,
        trust=TrustPublic.of(a.trust),
        domains=[
            DomainTrustPublic(domain=name, **TrustPublic.of(t).model_dump())
            for name, t in a.domains.items()
        ],
        p_below_floor=a.below_floor,
        qualification=a.qualification,
        paused=a.paused,
        pause_reason=a.pause_reason,
        paused_at=a.paused_at,
        labels_excluded=a.excluded,
    )


@router.get("/projects/{project_id}/quality")
def read_quality(project_id: Id, session: SessionDep, user: CurrentUser) -> ProjectQualityPublic:
    """Each member's trust (Beta posterior, 90% interval) in this project and its domains,
    graded labels, qualification, and pause (owners, reviewers; why and when: owners only)."""
    seen = projects.access(session, user, project_id)
    policies.authorize(user, policies.can_see_quality(seen.role), "only owners and reviewers")
    reasons = policies.can_see_pause_reason(seen.role)(user)
    found = report.project_quality(session, seen.project, with_reasons=reasons)
    return ProjectQualityPublic(
        accuracy_floor=found.accuracy_floor,
        pause_certainty=found.pause_certainty,
        domains=found.domains,
        gold_tasks=found.gold_tasks,
        qualification_tasks=found.qualification_tasks,
        escalated_waiting=found.escalated_waiting,
        fitted_at=found.fitted_at,
        fitted_labels=found.fitted_labels,
        waiting_labels=found.waiting_labels,
        waiting_since=found.waiting_since,
        annotators=[_annotator(a) for a in found.annotators],
    )


def _owned(session: SessionDep, user: User, project_id: int, user_id: int) -> ProjectAccess:
    """The project, when ``user`` may decide on its annotators and ``user_id`` is a member or
    worked in it."""
    seen = projects.access(session, user, project_id)
    policies.authorize(
        user, policies.can_manage_standing(seen.role), "only the project's owners may do this"
    )
    pause.get_member_worker(session, seen.project, user_id)
    return seen


def _standing(session: SessionDep, project: Project, user_id: int) -> StandingPublic:
    found = report.standing(session, project, user_id)
    return StandingPublic(
        project_id=project.id,
        user_id=user_id,
        qualification=found.qualification,
        paused=found.paused,
        pause_reason=found.pause_reason,
    )


@router.post("/projects/{project_id}/annotators/{user_id}/pause")
def pause_annotator(
    project_id: Id, user_id: Id, body: PauseCreate, session: SessionDep, user: CurrentUser
) -> StandingPublic:
    """Pause an annotator here (owners): no more tasks, live leases freed, labels left out of
    aggregation until un-paused."""
    seen = _owned(session, user, project_id, user_id)
    pause.pause_by_owner(session, seen.project.id, user_id, body.reason, by=user)
    return _standing(session, seen.project, user_id)


@router.post("/projects/{project_id}/annotators/{user_id}/unpause")
def unpause_annotator(
    project_id: Id, user_id: Id, session: SessionDep, user: CurrentUser
) -> StandingPublic:
    """Let a paused annotator label again (owners); auto-pause then weighs only new checks.
    409 when they are not paused."""
    seen = _owned(session, user, project_id, user_id)
    pause.unpause(session, seen.project.id, user_id, by=user)
    return _standing(session, seen.project, user_id)


@router.post("/projects/{project_id}/annotators/{user_id}/reset-qualification")
def reset_qualification(
    project_id: Id, user_id: Id, session: SessionDep, user: CurrentUser
) -> StandingPublic:
    """Let an annotator take the qualification again (owners); the graded attempt stays on
    record. 409 when they have no graded attempt."""
    seen = _owned(session, user, project_id, user_id)
    qualification.reset(session, seen.project, user_id, by=user)
    return _standing(session, seen.project, user_id)


@router.get("/me/trust")
def read_my_trust(session: SessionDep, user: CurrentUser) -> MyTrustPublic:
    """Your trust per domain and per project, as of the start of today (UTC)."""
    found = report.own_view(session, user)
    return MyTrustPublic(
        as_of=found.as_of,
        domains=[
            DomainTrustPublic(domain=d.domain, **TrustPublic.of(d.trust).model_dump())
            for d in found.domains
        ],
        projects=[
            ProjectTrustPublic(
                project_id=p.project_id,
                project=p.name,
                paused=p.paused,
                qualification=p.qualification,
                **TrustPublic.of(p.trust).model_dump(),
            )
            for p in found.projects
        ],
    )


@router.get("/me/feedback")
def list_my_feedback(
    session: SessionDep, user: CurrentUser, cursor: Cursor = None, limit: Limit = 100
) -> ListOf[FeedbackPublic]:
    """Whether your graded checks were right, in projects with ``gold_feedback`` (oldest
    first), once the quality loop has graded them."""
    page = gold.feedback_for(session, user, cursor=cursor, limit=limit)
    return ListOf[FeedbackPublic](
        items=[FeedbackPublic.model_validate(f, from_attributes=True) for f in page.items],
        next_cursor=page.next_cursor,
    )
