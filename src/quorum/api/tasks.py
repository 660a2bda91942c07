"""Tasks: bulk import and reading them back (owners and reviewers)."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, status
from starlette.concurrency import run_in_threadpool

from quorum.api.deps import CurrentUser, SessionDep
from quorum.api.errors import BadRequest
from quorum.api.schemas import (
    MAX_ID,
    AnnotationForReview,
    Cursor,
    Id,
    ImportPublic,
    Limit,
    ListOf,
    TaskCreate,
    TaskPublic,
)
from quorum.db.models import Annotation, TaskStatus
from quorum.domain import annotations, policies, projects, tasks
from quorum.io.task_files import read_json_array, read_ndjson

router = APIRouter(tags=["tasks"])

NDJSON_TYPES = {"application/x-ndjson", "application/jsonl", "application/ndjson"}
IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "description": "A JSON array of tasks, or NDJSON (one task per line).",
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": TaskCreate.model_json_schema()}
            },
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "/projects/{project_id}/tasks",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=IMPORT_BODY,
)
async def import_tasks(
    project_id: Id,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    on_conflict: Annotated[
        Literal["error", "skip"],
        Query(description="what to do with an external_id already in the project"),
    ] = "error",
) -> ImportPublic:
    """Import tasks, all or nothing: one bad task rejects the body, with every problem listed."""
    seen = projects.access(session, user, project_id)
    policies.authorize(user, policies.can_manage_project(seen.role), "only owners import tasks")
    body = await request.body()
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if content_type in NDJSON_TYPES:
        records = read_ndjson(body.splitlines())
    elif content_type in ("application/json", ""):
        records = read_json_array(body)
    else:
        raise BadRequest(f"unsupported content type {content_type!r}: send JSON or NDJSON")
    result = await run_in_threadpool(
        tasks.import_tasks, session, seen.project, records, on_conflict=on_conflict
    )
    return ImportPublic(created=result.created, skipped=result.skipped)


@router.get("/projects/{project_id}/tasks")
def list_tasks(
    project_id: Id,
    session: SessionDep,
    user: CurrentUser,
    cursor: Cursor = None,
    limit: Limit = 100,
    status: TaskStatus | None = None,
) -> ListOf[TaskPublic]:
    """The project's tasks with gold and progress (owners and reviewers)."""
    seen = projects.access(session, user, project_id)
    policies.authorize(user, policies.can_see_gold(seen.role))
    page = tasks.list_tasks(session, seen.project, cursor=cursor, limit=limit, status=status)
    return ListOf[TaskPublic](
        items=[TaskPublic.model_validate(t) for t in page.items], next_cursor=page.next_cursor
    )


@router.get("/tasks/{task_id}")
def read_task(task_id: Id, session: SessionDep, user: CurrentUser) -> TaskPublic:
    """One task with its gold (owners and reviewers of its project)."""
    task = tasks.get(session, task_id)
    seen = projects.access(session, user, task.project_id)
    policies.reveal(user, policies.can_see_gold(seen.role), f"task {task_id}")
    return TaskPublic.model_validate(task)


@router.get("/projects/{project_id}/annotations")
def list_annotations(
    project_id: Id,
    session: SessionDep,
    user: CurrentUser,
    cursor: Cursor = None,
    limit: Limit = 100,
    task_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> ListOf[AnnotationForReview]:
    """Every annotation in the project, oldest first (owners and reviewers)."""
    seen = projects.access(session, user, project_id)
    policies.authorize(user, policies.can_review(seen.role))
    page = annotations.list_annotations(
        session, seen.project, cursor=cursor, limit=limit, task_id=task_id
    )
    items = [_for_review(annotation, pseudonym) for annotation, pseudonym in page.items]
    return ListOf[AnnotationForReview](items=items, next_cursor=page.next_cursor)


def _for_review(annotation: Annotation, pseudonym: str) -> AnnotationForReview:
    return AnnotationForReview(
        id=annotation.id,
        assignment_id=annotation.assignment_id,
        task_id=annotation.task_id,
        answers=annotation.answers,
        duration_ms=annotation.duration_ms,
        submitted_at=annotation.submitted_at,
        annotator=pseudonym,
    )
