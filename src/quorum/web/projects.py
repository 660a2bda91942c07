"""Requester pages: create a project with a live-checked schema editor, and import tasks."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response

from quorum.domain import demo, policies, projects, tasks
from quorum.domain.errors import Invalid, Problem
from quorum.domain.projects import ProjectAccess, schema_of
from quorum.io.task_files import format_for, read_tasks
from quorum.web.deps import CurrentUser, PageId, SessionDep, flash, render, render_fragment
from quorum.web.questions import context_fields, views
from quorum.web.specs import check_policy, check_schema, sample_task

router = APIRouter()
STARTER_SCHEMA = """questions:
  - name: label
    kind: choice
    title: Is the answer correct?
    options: [correct, wrong, unsure]
"""
STARTER_POLICY = "overlap: 3\nlease_seconds: 600\n"


def _examples() -> str:
    """One example schema per question kind, from the demo projects, for the editor's menu."""
    return json.dumps(
        {spec["schema"]["questions"][0]["kind"]: spec["schema"] for spec in demo.demo_specs()}
    )


def _form_context(**values: Any) -> dict[str, Any]:
    return {
        "values": {
            "name": "",
            "instructions": "",
            "schema": STARTER_SCHEMA,
            "policy": STARTER_POLICY,
        }
        | values,
        "examples": _examples(),
        "problems": [],
    }


@router.get("/projects/new", name="web_new_project")
def new_project_page(request: Request, user: CurrentUser) -> Response:
    return render(request, "project_new.html", _form_context())


async def json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise Invalid.one("body", "is not valid JSON") from None


@router.post("/projects/new/check", name="web_check_project")
def check_project(
    request: Request, user: CurrentUser, body: Annotated[Any, Depends(json_body)]
) -> JSONResponse:
    """The editor's live check: the domain's own validation, and a preview of the questions."""
    body = body if isinstance(body, dict) else {}
    schema_check, schema = check_schema(str(body.get("schema", "")))
    policy_check = check_policy(str(body.get("policy", "")))
    preview = None
    if schema is not None:
        data = sample_task(schema)
        context = {"questions": views(schema, data), "fields": context_fields(schema, data)}
        preview = render_fragment(request, "_preview.html", context)
    return JSONResponse(
        {
            "schema": {"ok": schema_check.ok, "problems": schema_check.problems},
            "policy": {"ok": policy_check.ok, "problems": policy_check.problems},
            "preview": preview,
        }
    )


@router.post("/projects/new", name="web_create_project")
def create_project(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    name: Annotated[str, Form(max_length=200)] = "",
    instructions: Annotated[str, Form(max_length=200_000)] = "",
    schema_text: Annotated[str, Form(alias="schema", max_length=200_000)] = "",
    policy_text: Annotated[str, Form(alias="policy", max_length=50_000)] = "",
) -> Response:
    schema_check, parsed = check_schema(schema_text)
    policy_check = check_policy(policy_text)
    problems: list[Problem] = schema_check.problems + policy_check.problems
    if parsed is not None and policy_check.ok:
        try:
            project = projects.create(
                session,
                user,
                name=name,
                instructions=instructions,
                schema=schema_check.value,
                policy=policy_check.value,
            )
        except Invalid as error:
            problems = error.details
        else:
            flash(request, f"Project “{project.name}” created. Now import its tasks.", "ok")
            return RedirectResponse(f"/projects/{project.id}/import", status_code=303)
    context = _form_context(
        name=name, instructions=instructions, schema=schema_text, policy=policy_text
    )
    return render(request, "project_new.html", context | {"problems": problems}, status_code=422)


def _managed(session: SessionDep, user: CurrentUser, project_id: int) -> ProjectAccess:
    seen = projects.access(session, user, project_id)
    policies.authorize(
        user, policies.can_manage_project(seen.role), "only the project's owners may do this"
    )
    return seen


@router.get("/projects/{project_id}/import", name="web_import_tasks")
def import_page(
    project_id: PageId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    seen = _managed(session, user, project_id)
    return render(request, "import.html", {"project": seen.project, "problems": [], "result": None})


@router.post("/projects/{project_id}/import", name="web_import_tasks_submit")
def import_submit(
    project_id: PageId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    file: Annotated[UploadFile, File()],
    on_conflict: Annotated[tasks.OnConflict, Form()] = "error",
) -> Response:
    """All or nothing, with the same line-numbered problems as the API and the CLI."""
    seen = _managed(session, user, project_id)
    context: dict[str, Any] = {
        "project": seen.project,
        "problems": [],
        "result": None,
        "filename": file.filename,
    }
    try:
        fmt = format_for(name=file.filename)
    except ValueError as error:  # the file's name does not say its format
        context["problems"] = [{"line": None, "field": "file", "message": str(error)}]
        return render(request, "import.html", context, status_code=422)
    try:
        records = read_tasks(file.file, fmt, schema_of(seen.project))
        context["result"] = tasks.import_tasks(
            session, seen.project, records, on_conflict=on_conflict
        )
    except Invalid as error:
        session.rollback()
        context |= {"problems": error.details, "message": error.message}
    status = 422 if context["problems"] else 200
    return render(request, "import.html", context, status_code=status)
