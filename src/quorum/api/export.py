"""Training-ready export of a project, streamed (owners and admins)."""

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from quorum.api.deps import CurrentUser, get_database
from quorum.api.schemas import Id
from quorum.domain.export import ExportFilter
from quorum.io.export_files import MEDIA_TYPES, ExportFormat, download
from quorum.truth import METHODS

router = APIRouter(tags=["export"])

Method = Literal["mv", "wawa", "zbs", "ds", "ods", "glad", "mace", "auto"]
assert set(get_args(Method)) == set(METHODS), "methods out of step with quorum.truth"
EXPORT_REPLY: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "One row per task (docs/import-export.md), streamed; hf, dpo and sft "
        "deliveries are a zipped Hugging Face dataset directory (docs/deliveries.md)",
        "content": {media: {"schema": {"type": "string"}} for media in MEDIA_TYPES.values()},
    }
}


@router.get(
    "/projects/{project_id}/export", response_class=StreamingResponse, responses=EXPORT_REPLY
)
def export_project(
    project_id: Id,
    request: Request,
    user: CurrentUser,
    format: Annotated[
        ExportFormat, Query(description="jsonl, csv, parquet; or a delivery: hf, dpo, sft")
    ] = "jsonl",
    method: Annotated[Method, Query(description="aggregation of categorical answers")] = "ds",
    complete_only: Annotated[bool, Query(description="only tasks with all their labels")] = False,
    min_confidence: Annotated[
        float | None, Query(ge=0, le=1, description="only tasks whose every answer is this sure")
    ] = None,
    since: Annotated[
        datetime | None, Query(description="only tasks last labelled at or after this time")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="only tasks last labelled before this time")
    ] = None,
    prompt_field: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="dpo and sft: the task data field holding the prompt (default: the "
            "preference question's prompt_field, else prompt)",
        ),
    ] = None,
) -> StreamingResponse:
    """Every task with its aggregated answers, their confidence and every label.

    The labels are aggregated before the reply starts; the rows then stream a batch of tasks at
    a time, so the reply can be any size.
    """
    filters = ExportFilter(complete_only, min_confidence, since, until)
    found = download(
        get_database(request),
        user,
        project_id,
        format,
        method=method,
        filters=filters,
        denied="only owners export",
        prompt_field=prompt_field,
    )
    return StreamingResponse(found.chunks, media_type=found.media_type, headers=found.headers)
