"""The annotation loop: lease the next task, submit or skip it."""

from typing import Annotated

from fastapi import APIRouter, Header, Response, status

from quorum.api.deps import CurrentUser, SessionDep
from quorum.api.schemas import (
    AnnotationPublic,
    AssignmentPublic,
    Id,
    LeasePublic,
    SubmissionCreate,
    TaskForAnnotator,
)
from quorum.domain import assignments, policies, projects

router = APIRouter(tags=["annotation"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="makes retries safe: the same key and body return the first reply",
    ),
]


@router.post(
    "/projects/{project_id}/next",
    response_model=LeasePublic,
    responses={
        200: {"model": LeasePublic, "description": "A task leased to you"},
        204: {"description": "No task is due to you in this project now"},
    },
)
def lease_next(project_id: Id, session: SessionDep, user: CurrentUser) -> LeasePublic | Response:
    """Lease the next task to label; asking again while holding a lease returns the same lease."""
    seen = projects.access(session, user, project_id)
    policies.authorize(
        user, policies.can_annotate(seen.role), "only members of the project label it"
    )
    lease = assignments.lease(session, seen.project, user)
    if lease is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return LeasePublic(
        assignment_id=lease.assignment.id,
        task=TaskForAnnotator.model_validate(lease.task),
        expires_at=lease.assignment.expires_at,
    )


@router.post("/assignments/{assignment_id}/submit")
def submit_assignment(
    assignment_id: Id,
    body: SubmissionCreate,
    session: SessionDep,
    user: CurrentUser,
    idempotency_key: IdempotencyKey = None,
) -> AnnotationPublic:
    """Submit the answers for a leased task."""
    annotation = assignments.submit(
        session,
        assignment_id,
        user,
        body.answers,
        duration_ms=body.duration_ms,
        key=idempotency_key,
    )
    return AnnotationPublic.model_validate(annotation)


@router.post("/assignments/{assignment_id}/skip")
def skip_assignment(assignment_id: Id, session: SessionDep, user: CurrentUser) -> AssignmentPublic:
    """Give the task back; you will not be offered it again."""
    return AssignmentPublic.model_validate(assignments.skip(session, assignment_id, user))
