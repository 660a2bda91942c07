"""Tasks: bulk import (streamed, all or nothing) and reading them back."""

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal

from sqlalchemy import String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from quorum.db.models import Project, Task, TaskStatus
from quorum.db.types import canonical_json, utcnow
from quorum.domain import bulk, problems
from quorum.domain.errors import Invalid, NotFound, Problem
from quorum.domain.pages import Page, paginate
from quorum.domain.projects import policy_of, schema_of
from quorum.domain.questions import QuestionSchema, check_answers, check_task_data
from quorum.domain.text import refuse_nul

MAX_PROBLEMS = 50
BATCH_SIZE = 5000
# Every lease sends its task's data to the annotator's page, so one task stays small enough to
# send and render at once: a long contract (a few hundred kB of text) fits; media go by URL.
MAX_TASK_DATA_BYTES = 2 * 1024 * 1024
TASK_KEYS = {"data", "gold", "external_id", "priority"}
# What Quorum's own export adds to a task; ignored on rows that carry a task_id, so an export
# re-imports as the same tasks, while a hand-written "answers" key is still refused.
EXPORT_KEYS = {"task_id", "answers", "confidence", "n_labels", "annotations"}
OnConflict = Literal["error", "skip"]


@dataclass(frozen=True)
class ImportResult:
    created: int
    skipped: int


@dataclass(frozen=True)
class Record:
    """One task as read from a file or a request body: where it came from, and what it holds.

    ``error`` is set instead of ``value`` when the reader could not parse it, so one import
    reports every bad line, not only the first; ``field`` says where in the line.
    """

    line: int
    value: Any = None
    error: str | None = None
    field: str = "line"


def import_tasks(
    session: Session,
    project: Project,
    records: Iterable[Record],
    *,
    on_conflict: OnConflict = "error",
    batch_size: int = BATCH_SIZE,
) -> ImportResult:
    """Validate and insert tasks a batch at a time in one transaction; commit only if all are good.

    Memory stays flat however many records come: batches are inserted as they are checked, and a
    problem anywhere rolls every one back. Raises Invalid listing the first problems by line.
    """
    lock_for_import(session, project.id)
    run = _Import(schema_of(project), on_conflict, _has_external_ids(session, project.id))
    writer = bulk.TaskWriter(session, project.id, policy_of(project).overlap, utcnow())
    records = iter(records)
    # NOTE: records are checked as they stream by and only their flat rows are kept: holding a
    # batch of parsed objects gets them promoted by the cyclic GC, whose full collections then
    # cost more than all the checking.
    while True:
        rows, read = run.validate(islice(records, batch_size))
        if not read:
            break
        if run.lookups:
            writer.pause()
            rows = run.keep_new(session, project.id, rows)
        if not run.problems.count:
            writer.insert(rows)
    writer.pause()
    if run.problems.count:
        session.rollback()
        raise run.problems.error()
    session.commit()
    return ImportResult(created=writer.count, skipped=run.skipped)


def lock_for_import(session: Session, project_id: int) -> None:
    """One import at a time per project, so two cannot both add the same external_id.

    NOTE: FOR NO KEY UPDATE, not FOR UPDATE: the foreign-key checks of new leases and labels take
    FOR KEY SHARE on the project row, which FOR UPDATE would block for the whole import. SQLite
    needs nothing: the import's transaction began IMMEDIATE and holds the write lock.
    """
    query = select(Project.id).where(Project.id == project_id).with_for_update(key_share=True)
    session.execute(query)


class _Problems:
    """The first MAX_PROBLEMS problems by line, in whatever order they are found, and a count."""

    def __init__(self) -> None:
        self.count = 0
        self._heap: list[tuple[int, int, Problem]] = []  # a max-heap on (line, arrival)

    def add(self, problem: Problem) -> None:
        self.count += 1
        item = (-int(problem["line"]), -self.count, problem)
        if len(self._heap) < MAX_PROBLEMS:
            heapq.heappush(self._heap, item)
        elif item > self._heap[0]:
            heapq.heapreplace(self._heap, item)

    def first(self) -> list[Problem]:
        return [problem for _, _, problem in sorted(self._heap, reverse=True)]

    def error(self) -> Invalid:
        first = self.first()
        head = first[0]
        return Invalid(
            f"{problems.count_of(self.count)}; nothing was imported; first at line "
            f"{head['line']}: {head['field']}: {head['message']}",
            first,
        )


class _Import:
    """The state of one import: problems so far and the external_ids already seen in the input."""

    def __init__(self, schema: QuestionSchema, on_conflict: OnConflict, lookups: bool) -> None:
        self.check = _TaskCheck(schema)
        self.on_conflict = on_conflict
        # Only a project that already has external_ids needs them looked up: the first import
        # into a project (the big one, usually) streams straight into the table.
        self.lookups = lookups
        self.problems = _Problems()
        # NOTE: the one thing that grows with the input, about 100 bytes per external_id: it
        # names the line a duplicate repeats.
        self.seen: dict[str, int] = {}
        self.skipped = 0

    def validate(self, records: Iterable[Record]) -> tuple[list[bulk.TaskRow], int]:
        """The rows of the good records, and how many were read; the others' problems are noted."""
        rows, read = [], 0
        for read, record in enumerate(records, start=1):  # noqa: B007 (read counts them)
            row = self._row(record)
            if row is not None:
                rows.append(row)
        return rows, read

    def _row(self, record: Record) -> bulk.TaskRow | None:
        if record.error is not None:
            self.problems.add({"line": record.line, "field": record.field, "message": record.error})
            return None
        try:
            row = self.check.row(record.line, record.value)
        except Invalid as error:
            for problem in error.details:
                self.problems.add({"line": record.line, **problem})
            return None
        if row.external_id is not None:
            first = self.seen.setdefault(row.external_id, record.line)
            if first != record.line:
                why = f"repeats line {first}"
                self.problems.add(_duplicate(record.line, row.external_id, why))
                return None
        return row

    def keep_new(
        self, session: Session, project_id: int, rows: list[bulk.TaskRow]
    ) -> list[bulk.TaskRow]:
        """Rows whose external_id is not in the project yet: the others are skipped or refused."""
        named = [row.external_id for row in rows if row.external_id is not None]
        if not named:
            return rows
        existing = _existing(session, project_id, named)
        if not existing:
            return rows
        kept = []
        for row in rows:
            if row.external_id not in existing:
                kept.append(row)
            elif self.on_conflict == "skip":
                self.skipped += 1
            else:
                assert row.external_id is not None
                self.problems.add(_duplicate(row.line, row.external_id, "already in the project"))
        return kept


def _has_external_ids(session: Session, project_id: int) -> bool:
    query = select(Task.id).where(Task.project_id == project_id, Task.external_id.is_not(None))
    return session.scalar(query.limit(1)) is not None


def _existing(session: Session, project_id: int, external_ids: list[str]) -> set[str]:
    """Which of ``external_ids`` the project already has (this import's earlier rows included)."""
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter: psycopg rewrites a query of thousands of parameters slowly.
        match = Task.external_id == any_(bindparam("ids", external_ids, type_=ARRAY(String)))
    else:
        match = Task.external_id.in_(external_ids)
    query = select(Task.external_id).where(Task.project_id == project_id, match)
    return {external_id for external_id in session.scalars(query) if external_id is not None}


def _duplicate(line: int, external_id: str, why: str) -> Problem:
    return {"line": line, "field": "external_id", "message": f"{external_id!r} {why}"}


class _TaskCheck:
    """Validates one task object against the project's schema and turns it into a row.

    NOTE: this runs a million times per big import, so the common case (a valid task) takes
    fast paths; any failure reruns the full checks, which name every problem.
    """

    def __init__(self, schema: QuestionSchema) -> None:
        self.schema = schema
        self.fields = [(f, kind) for q in schema.questions for f, kind in q.task_fields().items()]

    def row(self, line: int, value: Any) -> bulk.TaskRow:
        if not isinstance(value, dict):
            raise Invalid.one("task", "must be an object with a 'data' object")
        if not TASK_KEYS.issuperset(value):
            self._known_keys(value)
        data = value.get("data")
        if not self._data_fits(data):
            problems = check_task_data(self.schema, data)
            raise Invalid(problems[0]["message"], problems)
        assert isinstance(data, dict)
        gold = value.get("gold")
        if gold is not None:
            refuse_nul(gold, "gold")
            gold = check_answers(self.schema, data, gold, field="gold", partial=True) or None
        data_json = canonical_json(data)
        if len(data_json) > MAX_TASK_DATA_BYTES:
            raise Invalid.one(
                "data",
                f"is {len(data_json):,} bytes of JSON; a task holds at most "
                f"{MAX_TASK_DATA_BYTES:,} (put large media behind a URL)",
            )
        if b"\\u0000" in data_json:  # NUL is always escaped; the exact walk only when it may be
            refuse_nul(data, "data")
        external_id = value.get("external_id")
        if external_id is not None:
            external_id = _external_id(external_id)
        priority = value.get("priority", 0)
        if type(priority) is not int or not -(2**31) <= priority < 2**31:
            raise Invalid.one("priority", "must be a whole number")
        gold_json = canonical_json(gold).decode() if gold is not None else None
        return bulk.TaskRow(line, external_id, data_json.decode(), gold_json, priority)

    def _data_fits(self, data: Any) -> bool:
        if type(data) is not dict:
            return False
        for field, kind in self.fields:
            value = data.get(field)
            if not isinstance(value, kind) or (isinstance(value, list) and len(value) < 2):
                return False
        return True

    def _known_keys(self, value: dict[str, Any]) -> None:
        unknown = value.keys() - TASK_KEYS
        if "task_id" in value:
            unknown -= EXPORT_KEYS
        if unknown:
            first = sorted(unknown)[0]
            refuse_nul(first, "")
            raise Invalid.one(first, f"unknown key; a task has {sorted(TASK_KEYS)}")


def _external_id(raw: Any) -> str:
    if type(raw) is not str and (isinstance(raw, bool) or not isinstance(raw, int)):
        raise Invalid.one("external_id", "must be text or a whole number")
    text = str(raw)
    if not 1 <= len(text) <= 200:
        raise Invalid.one("external_id", "must have 1 to 200 characters")
    if text.isspace():
        raise Invalid.one("external_id", "is blank: only spaces")
    if "\x00" in text:
        refuse_nul(text, "external_id")
    return text


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
