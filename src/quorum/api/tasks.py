"""Tasks: bulk import and reading them back (owners and reviewers)."""

import io
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from typing import IO, Annotated, Any, Literal

import anyio.from_thread
import anyio.lowlevel
from fastapi import APIRouter, Query, Request, status
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile  # what request.form() holds

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
from quorum.io.task_files import Format, format_for, read_tasks

router = APIRouter(tags=["tasks"])

ImportFormat = Literal["json", "ndjson", "jsonl", "csv", "parquet"]
TASK_LIST = {"type": "array", "items": TaskCreate.model_json_schema()}
IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "description": "Tasks as a JSON array, NDJSON (one task per line), CSV or Parquet; or a "
        "multipart form whose field 'file' holds such a file. See docs/import-export.md.",
        "content": {
            "application/json": {"schema": TASK_LIST},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
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
SPOOL_BYTES = 8 * 1024 * 1024


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
    format: Annotated[
        ImportFormat | None,
        Query(description="the body's format; by default from its content type or file name"),
    ] = None,
) -> ImportPublic:
    """Import tasks, all or nothing: one bad task rejects the body, with every problem listed.

    The body is streamed into the import as it arrives, which runs off the event loop.
    """
    seen = projects.access(session, user, project_id)
    policies.authorize(user, policies.can_manage_project(seen.role), "only owners import tasks")
    schema = projects.schema_of(seen.project)
    async with upload_body(request, format) as (fmt, body):

        def run() -> tasks.ImportResult:
            with seekable(body) if fmt == "parquet" else nullcontext(body) as file:
                records = read_tasks(file, fmt, schema)
                return tasks.import_tasks(session, seen.project, records, on_conflict=on_conflict)

        result = await run_in_threadpool(run)
    return ImportPublic(created=result.created, skipped=result.skipped)


@asynccontextmanager
async def upload_body(
    request: Request, given: str | None
) -> AsyncIterator[tuple[Format, IO[bytes]]]:
    """The body's format and a blocking stream of its tasks: the uploaded file of a multipart
    form (which Starlette spools to disk), else the raw body as it arrives."""
    content_type = request.headers.get("content-type", "application/json")
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        fmt = _format(content_type=content_type, given=given)
        yield fmt, io.BufferedReader(BodyStream(request), buffer_size=1024 * 1024)
        return
    form = await request.form(max_files=1, max_fields=10)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequest("send the tasks as a file in the form field 'file'")
        yield (
            _format(name=upload.filename, content_type=upload.content_type, given=given),
            upload.file,
        )
    finally:
        await form.close()


def _format(
    *, name: str | None = None, content_type: str | None = None, given: str | None = None
) -> Format:
    try:
        return format_for(name=name, content_type=content_type, given=given)
    except ValueError as error:
        status = 400 if given else 415  # a format named wrong, or a body of unknown type
        raise BadRequest(
            f"{error}; or say ?format=json|ndjson|csv|parquet", status=status
        ) from None


class BodyStream(io.RawIOBase):
    """The request body as a blocking file, for a worker thread: each read awaits the next chunk
    on the event loop, so the body is never held whole."""

    def __init__(self, request: Request) -> None:
        self.chunks = request.stream()
        self.pending = memoryview(b"")
        # NOTE: PyArrow reads from a thread of its own, not AnyIO's, so name the loop to call.
        self.loop = anyio.lowlevel.current_token()

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self.pending:
            chunk = anyio.from_thread.run(self._next_chunk, token=self.loop)
            if chunk is None:
                return 0
            self.pending = memoryview(chunk)
        size = min(len(target), len(self.pending))
        target[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size

    async def _next_chunk(self) -> bytes | None:
        try:
            return await anext(self.chunks)
        except StopAsyncIteration:
            return None


@contextmanager
def seekable(body: IO[bytes]) -> Iterator[IO[bytes]]:
    """Parquet keeps its index at the end of the file: spool a body first (to disk when big)."""
    if body.seekable():
        yield body
        return
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        shutil.copyfileobj(body, spool, length=1024 * 1024)
        spool.seek(0)
        yield spool


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
