"""Moving to Quorum with your history: a Label Studio JSON export, tasks and their labels."""

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from quorum.api.deps import CurrentUser, SessionDep
from quorum.api.schemas import Id
from quorum.api.tasks import upload_body
from quorum.domain import history, policies, projects
from quorum.io.label_studio import read_label_studio

router = APIRouter(tags=["tasks"])

LABEL_STUDIO_BODY = {
    "requestBody": {
        "required": True,
        "description": "Label Studio's JSON export (an array of tasks with their annotations), "
        "as the body or as the file of a multipart form. See docs/import-export.md.",
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


class HistoryImportPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    tasks: int
    annotations: int
    annotators: int
    cancelled: int
    empty: int
    repeated: int


@router.post(
    "/projects/{project_id}/tasks/label-studio",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=LABEL_STUDIO_BODY,
)
async def import_label_studio(
    project_id: Id, request: Request, session: SessionDep, user: CurrentUser
) -> HistoryImportPublic:
    """Import a Label Studio export with its annotations, all or nothing; each result answers
    the question named by its ``from_name`` (docs/import-export.md has the mapping)."""
    seen = projects.access(session, user, project_id)
    policies.authorize(user, policies.can_manage_project(seen.role), "only owners import tasks")
    schema = projects.schema_of(seen.project)
    async with upload_body(request, "json") as (_, body):

        def run() -> history.HistoryImport:
            return history.import_history(session, seen.project, read_label_studio(body, schema))

        result = await run_in_threadpool(run)
    return HistoryImportPublic.model_validate(result)
