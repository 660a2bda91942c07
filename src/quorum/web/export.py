"""Downloading a project's export from the dashboard: the same rows as the API's export."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from quorum.db.models import Project
from quorum.domain import aggregation, deliveries
from quorum.domain.export import ExportFilter
from quorum.domain.projects import schema_of
from quorum.io.export_files import EXPORT_FORMATS, ExportFormat, download
from quorum.truth import METHODS
from quorum.web.deps import CurrentUser, PageId

router = APIRouter()


@router.get("/projects/{project_id}/export", name="web_export")
def download_export(
    project_id: PageId,
    request: Request,
    user: CurrentUser,
    format: Annotated[ExportFormat, Query()] = "jsonl",
    method: Annotated[str, Query(max_length=16)] = aggregation.DEFAULT_METHOD,
    complete_only: bool = False,
    prompt_field: Annotated[str, Query(max_length=200)] = "",
) -> StreamingResponse:
    """One row per task with aggregated answers, confidence and every label, streamed; dpo and
    sft take their prompts from ``prompt_field`` (blank: the default)."""
    found = download(
        request.app.state.database,
        user,
        project_id,
        format,
        method=method,
        filters=ExportFilter(complete_only=complete_only),
        denied="only the project's owners export",
        prompt_field=prompt_field.strip() or None,
    )
    return StreamingResponse(found.chunks, media_type=found.media_type, headers=found.headers)


AGGREGATION_METHODS = METHODS


def formats_for(project: Project) -> list[ExportFormat]:
    """The formats the dashboard offers: every file format, and the deliveries the project's
    questions allow (no dpo without a preference question, no sft without a text question)."""
    allowed = deliveries.possible(schema_of(project))
    return [f for f in EXPORT_FORMATS if f not in deliveries.DELIVERY_KINDS or f in allowed]
