"""Owners' and reviewers' views of labels: every annotation, and one task with all of its."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from quorum.domain import annotations, pause, reviews, tasks
from quorum.domain.errors import NotFound
from quorum.domain.projects import schema_of
from quorum.web.answers import answer_views
from quorum.web.deps import CurrentUser, PageId, SessionDep, render
from quorum.web.review import reviewing
from quorum.web.templating import pretty_json

router = APIRouter()
PAGE = 50


@router.get("/projects/{project_id}/annotations", name="web_annotations")
def annotations_page(
    project_id: PageId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    cursor: str | None = None,
) -> Response:
    seen = reviewing(session, user, project_id)
    page = annotations.list_annotations(session, seen.project, cursor=cursor, limit=PAGE)
    rows = [(a, pseudonym, _short(a.answers)) for a, pseudonym in page.items]
    context = {
        "project": seen.project,
        "rows": rows,
        "next_cursor": page.next_cursor,
        "paused": pause.paused_ids(session, seen.project.id),
    }
    return render(request, "annotations.html", context)


def _short(answers: object, limit: int = 140) -> str:
    text = pretty_json(answers).replace("\n", " ")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@router.get("/projects/{project_id}/tasks/{task_id}", name="web_task_detail")
def task_page(
    project_id: PageId, task_id: PageId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    seen = reviewing(session, user, project_id)
    task = tasks.get(session, task_id)
    if task.project_id != seen.project.id:
        raise NotFound(f"no task {task_id}")
    schema = schema_of(seen.project)
    labelled = reviews.task_annotations(session, task.id)
    latest = reviews.latest_reviews(session, [item.annotation.id for item in labelled])
    context = {
        "project": seen.project,
        "task": task,
        "fields": [(k.replace("_", " ").capitalize(), v) for k, v in task.data.items()],
        "gold": answer_views(schema, task.data, task.gold) if task.gold else None,
        "labelled": [
            (
                item,
                answer_views(schema, task.data, item.annotation.answers),
                latest.get(item.annotation.id),
            )
            for item in labelled
        ],
    }
    return render(request, "task.html", context)
