"""Tasks: bulk import (all or nothing) and reading them back."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from quorum.db.models import Project, Task, TaskStatus
from quorum.db.types import utcnow
from quorum.domain.errors import Invalid, NotFound, Problem
from quorum.domain.pages import Page, paginate
from quorum.domain.projects import policy_of, schema_of
from quorum.domain.questions import QuestionSchema, check_answers, check_task_data
from quorum.domain.text import refuse_nul

MAX_PROBLEMS = 50
TASK_KEYS = {"data", "gold", "external_id", "priority"}
OnConflict = Literal["error", "skip"]


@dataclass(frozen=True)
class ImportResult:
    created: int
    skipped: int


@dataclass(frozen=True)
class Record:
    """One task as read from a file or a request body: where it came from, and what it holds.

    ``error`` is set instead of ``value`` when the reader could not parse it, so one import
    reports every bad line, not only the first.
    """

    line: int
    value: Any = None
    error: str | None = None


def import_tasks(
    session: Session,
    project: Project,
    records: Iterable[Record],
    *,
    on_conflict: OnConflict = "error",
    batch_size: int = 5000,
) -> ImportResult:
    """Validate every record, then insert them all in one transaction, or insert nothing.

    Raises Invalid listing the first problems, each with its line and field.
    """
    schema, overlap = schema_of(project), policy_of(project).overlap
    existing = _existing_external_ids(session, project.id)
    problems: list[Problem] = []
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    skipped = 0
    now = utcnow()
    for record in records:
        if record.error is not None:
            problems.append({"line": record.line, "field": "line", "message": record.error})
            continue
        try:
            row = _task_row(schema, record)
        except Invalid as error:
            problems.extend({"line": record.line, **p} for p in error.details)
            continue
        external_id = row["external_id"]
        if external_id is not None:
            if external_id in existing:
                if on_conflict == "skip":
                    skipped += 1
                    continue
                problems.append(_duplicate(record.line, external_id, "already in the project"))
                continue
            if external_id in seen:
                problems.append(
                    _duplicate(record.line, external_id, f"repeats line {seen[external_id]}")
                )
                continue
            seen[external_id] = record.line
        rows.append(row | {"project_id": project.id, "overlap": overlap, "created_at": now})
    if problems:
        raise Invalid(
            f"{len(problems)} problem(s); nothing was imported; first at line "
            f"{problems[0]['line']}: {problems[0]['field']}: {problems[0]['message']}",
            problems[:MAX_PROBLEMS],
        )
    for start in range(0, len(rows), batch_size):
        session.execute(insert(Task), rows[start : start + batch_size])
    session.commit()
    return ImportResult(created=len(rows), skipped=skipped)


def _duplicate(line: int, external_id: str, why: str) -> Problem:
    return {"line": line, "field": "external_id", "message": f"{external_id!r} {why}"}


def _existing_external_ids(session: Session, project_id: int) -> set[str]:
    query = select(Task.external_id).where(
        Task.project_id == project_id, Task.external_id.is_not(None)
    )
    return {external_id for external_id in session.scalars(query) if external_id is not None}


def _task_row(schema: QuestionSchema, record: Record) -> dict[str, Any]:
    value = record.value
    if not isinstance(value, dict):
        raise Invalid.one("task", "must be an object with a 'data' object")
    refuse_nul(value, "")
    unknown = sorted(set(value) - TASK_KEYS)
    if unknown:
        raise Invalid.one(unknown[0], f"unknown key; a task has {sorted(TASK_KEYS)}")
    data = value.get("data")
    problems = check_task_data(schema, data)
    if problems:
        raise Invalid(problems[0]["message"], problems)
    assert isinstance(data, dict)
    gold = value.get("gold")
    if gold is not None:
        gold = check_answers(schema, data, gold, field="gold", partial=True) or None
    return {
        "data": data,
        "gold": gold,
        "external_id": _external_id(value.get("external_id")),
        "priority": _priority(value.get("priority", 0)),
        "status": TaskStatus.open,
        "n_submitted": 0,
        "n_leased": 0,
    }


def _external_id(raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise Invalid.one("external_id", "must be text or a whole number")
    text = str(raw)
    if not 1 <= len(text) <= 200:
        raise Invalid.one("external_id", "must have 1 to 200 characters")
    return text


def _priority(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not -(2**31) <= raw < 2**31:
        raise Invalid.one("priority", "must be a whole number")
    return raw


def get(session: Session, task_id: int) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound(f"no task {task_id}")
    return task


def list_tasks(
    session: Session,
    project: Project,
    *,
    cursor: str | None,
    limit: int,
    status: TaskStatus | None = None,
) -> Page[Task]:
    query = select(Task).where(Task.project_id == project.id)
    if status is not None:
        query = query.where(Task.status == status)
    return paginate(session, query, Task.id, cursor, limit)
