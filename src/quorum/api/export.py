"""Training-ready export of a project, streamed (owners and admins)."""

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from quorum.api.deps import CurrentUser, get_database
from quorum.api.schemas import Id
from quorum.domain import export, policies, projects
from quorum.io.export_files import EXTENSIONS, MEDIA_TYPES, ExportFormat, stream_export
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
) -> StreamingResponse:
    """Every task with its aggregated answers, their confidence and every label.

    The labels are aggregated before the reply starts; the rows then stream a batch of tasks at
    a time, so the reply can be any size.
    """
    filters = export.ExportFilter(complete_only, min_confidence, since, until)
    # NOTE: a session of its own, closed when the stream ends: the request's may be closed
    # as soon as this handler returns.
    session = get_database(request).session()
    try:
        seen = projects.access(session, user, project_id)
        policies.authorize(user, policies.can_export(seen.role), "only owners export")
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
