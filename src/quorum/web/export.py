"""Downloading a project's export from the dashboard: the same rows as the API's export."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from quorum.db.engine import Database
from quorum.domain import aggregation, export, policies, projects
from quorum.io.export_files import (
    EXPORT_FORMATS,
    EXTENSIONS,
    MEDIA_TYPES,
    ExportFormat,
    stream_export,
)
from quorum.truth import METHODS
from quorum.web.deps import CurrentUser, PageId

router = APIRouter()


@router.get("/projects/{project_id}/export", name="web_export")
def download(
    project_id: PageId,
    request: Request,
    user: CurrentUser,
    format: Annotated[ExportFormat, Query()] = "jsonl",
    method: Annotated[str, Query(max_length=16)] = aggregation.DEFAULT_METHOD,
    complete_only: bool = False,
) -> StreamingResponse:
    """One row per task with aggregated answers, confidence and every label, streamed."""
    database: Database = request.app.state.database
    # NOTE: a session of its own, closed when the stream ends: the rows are read while the
    # response is sent, after this handler has returned.
    session = database.session()
    try:
        seen = projects.access(session, user, project_id)
        policies.authorize(user, policies.can_export(seen.role), "only the project's owners export")
        filters = export.ExportFilter(complete_only=complete_only)
        prepared = export.prepare(session, seen.project, method=method, filters=filters)
        chunks = stream_export(prepared, format)
    except BaseException:
        session.close()
        raise
    name = f"project-{project_id}.{EXTENSIONS[format]}"
    return StreamingResponse(
        _closing(chunks, session),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _closing(chunks: Iterator[bytes], session: Session) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        session.close()


FORMATS = EXPORT_FORMATS
AGGREGATION_METHODS = METHODS
