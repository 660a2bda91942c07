"""The annotation loop: lease the next task, submit or skip it.

These three handlers are the hot path of a labeling project: coroutines that hand the API token
to the domain, which checks it inside the statement that does the work. They read the request
directly rather than through dependencies: FastAPI's dependency resolution costs more per
request than the rest of the handler (measured; see docs/assignment.md). In a project that hides
gold, the task ids they show are the annotator's own handles (``lease_rules.task_ref``).
"""

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status

from quorum.api.deps import BEARER, get_database, token_of
from quorum.api.schemas import (
    AnnotationPublic,
    AssignmentPublic,
    Id,
    LeasePublic,
    SubmissionCreate,
    TaskForAnnotator,
)
from quorum.domain import assignments

router = APIRouter(tags=["annotation"])

MAX_KEY = 200  # the longest Idempotency-Key accepted
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY,
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
    openapi_extra=BEARER,
)
async def lease_next(project_id: Id, request: Request) -> LeasePublic | Response:
    """Lease the next task to label; asking again while holding a lease returns the same lease."""
    lease = await assignments.lease_by_token(get_database(request), project_id, token_of(request))
    if lease is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return lease_reply(lease)


@router.post("/assignments/{assignment_id}/submit", openapi_extra=BEARER)
async def submit_assignment(
    assignment_id: Id,
    body: SubmissionCreate,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> AnnotationPublic:
    """Submit the answers for a leased task."""
    submission = assignments.Submission(
        assignment_id, body.answers, body.duration_ms, idempotency_key
    )
    annotation = await assignments.submit_by_token(
        get_database(request), token_of(request), submission
    )
    return annotation_reply(annotation)


@router.post("/assignments/{assignment_id}/skip", openapi_extra=BEARER)
async def skip_assignment(assignment_id: Id, request: Request) -> AssignmentPublic:
    """Give the task back; you will not be offered it again."""
    skipped = await assignments.skip_by_token(
        get_database(request), assignment_id, token_of(request)
    )
    return skip_reply(skipped)


# The replies, shared with the lane that serves these calls without the framework
# (``annotation_lane``).


def lease_reply(lease: assignments.LeaseView) -> LeasePublic:
    return LeasePublic(
        assignment_id=lease.assignment_id,
        task=TaskForAnnotator(id=lease.task_ref, data=lease.data),
        expires_at=lease.expires_at,
    )


def annotation_reply(annotation: assignments.SubmissionView) -> AnnotationPublic:
    return AnnotationPublic(
        id=annotation.id,
        assignment_id=annotation.assignment_id,
        task_id=annotation.task_ref,
        answers=annotation.answers,
        duration_ms=annotation.duration_ms,
        submitted_at=annotation.submitted_at,
    )


def skip_reply(skipped: assignments.AssignmentView) -> AssignmentPublic:
    return AssignmentPublic(
        id=skipped.id,
        task_id=skipped.task_ref,
        status=skipped.status,
        leased_at=skipped.leased_at,
        expires_at=skipped.expires_at,
        finished_at=skipped.finished_at,
    )
