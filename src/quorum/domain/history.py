"""Importing tasks together with labels made elsewhere (a Label Studio export), all or nothing.

A team moving to Quorum keeps its history: each task arrives with its annotations, and each
outside annotator becomes a Quorum user known by a pseudonym, without a password and inactive
(an admin may activate them), or the existing user with the same email. The labels are
ordinary annotations afterwards: aggregated, exported, agreed on; they earn nothing.

Everything is checked as it streams by, a batch at a time inside one transaction: task data
and gold as for any import, every answer against the project's schema (any subset of the
questions, as history may be partial). One problem anywhere rolls everything back and is
reported with its line and field. An annotator who labelled a task twice keeps their latest
label; empty and cancelled annotations are left out; all are counted in the result.
"""

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from quorum.db.models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    Project,
    Task,
    TaskStatus,
    User,
)
from quorum.db.types import utcnow
from quorum.domain import users
from quorum.domain.errors import Invalid
from quorum.domain.problems import Problems
from quorum.domain.projects import policy_of, schema_of
from quorum.domain.questions import QuestionSchema, check_answers, check_task_data
from quorum.domain.task_status import recompute_task_status
from quorum.domain.tasks import Record, lock_for_import
from quorum.domain.text import refuse_nul

BATCH = 500
PLACEHOLDER_DOMAIN = "import.invalid"  # RFC 2606: never a real mailbox


@dataclass(frozen=True)
class Annotator:
    """Someone who labelled elsewhere: a stable key in the source tool, maybe an email."""

    key: str
    email: str | None = None
    name: str = ""


@dataclass(frozen=True)
class HistoryAnnotation:
    annotator: Annotator
    answers: dict[str, Any]
    submitted_at: datetime | None
    duration_ms: int | None
    line_field: str = "annotations"  # where in the source line it came from


@dataclass(frozen=True)
class HistoryTask:
    external_id: str
    data: dict[str, Any]
    gold: dict[str, Any] | None
    annotations: list[HistoryAnnotation]
    cancelled: int = 0


@dataclass(frozen=True)
class HistoryImport:
    tasks: int
    annotations: int
    annotators: int  # new Quorum users made for outside annotators
    cancelled: int
    empty: int
    repeated: int  # an annotator's earlier labels of a task they labelled again


@dataclass
class _Counts:
    tasks: int = 0
    annotations: int = 0
    annotators: int = 0
    cancelled: int = 0
    empty: int = 0
    repeated: int = 0


def import_history(
    session: Session, project: Project, records: Iterable[Record], *, now: datetime | None = None
) -> HistoryImport:
    """Insert the tasks of ``records`` (each holding a ``HistoryTask``) with their labels."""
    lock_for_import(session, project.id)
    run = _Run(session, project, now or utcnow())
    iterator = iter(records)
    while batch := list(islice(iterator, BATCH)):
        checked = run.check(batch)
        if not run.problems.count:
            run.write(checked)
    if run.problems.count:
        session.rollback()
        run.problems.raise_any("tasks")
    for start in range(0, len(run.task_ids), 1000):
        recompute_task_status(session, task_ids=run.task_ids[start : start + 1000])
    session.commit()
    c = run.counts
    return HistoryImport(c.tasks, c.annotations, c.annotators, c.cancelled, c.empty, c.repeated)


class _Run:
    def __init__(self, session: Session, project: Project, now: datetime) -> None:
        self.session, self.project, self.now = session, project, now
        self.schema: QuestionSchema = schema_of(project)
        self.overlap = policy_of(project).overlap
        self.problems = Problems()
        self.counts = _Counts()
        self.seen: dict[str, int] = {}
        self.people: dict[str, int] = {}
        self.task_ids: list[int] = []

    # -- checking ---------------------------------------------------------------------------

    def check(self, records: list[Record]) -> list[HistoryTask]:
        good = [task for record in records if (task := self._check(record)) is not None]
        taken = self._existing([task.external_id for task in good])
        lines = {task.external_id: self.seen[task.external_id] for task in good}
        for external_id in sorted(taken):
            self.problems.add(
                lines[external_id], "id", f"{external_id!r} is already in the project"
            )
        return [task for task in good if task.external_id not in taken]

    def _check(self, record: Record) -> HistoryTask | None:
        if record.error is not None:
            self.problems.add(record.line, record.field, record.error)
            return None
        task: HistoryTask = record.value
        first = self.seen.setdefault(task.external_id, record.line)
        if first != record.line:
            self.problems.add(record.line, "id", f"task {task.external_id!r} repeats line {first}")
            return None
        try:
            return self._clean(task)
        except Invalid as error:
            self.problems.add_invalid(record.line, error)
            return None

    def _clean(self, task: HistoryTask) -> HistoryTask:
        problems = check_task_data(self.schema, task.data)
        if problems:
            raise Invalid(problems[0]["message"], problems)
        refuse_nul(task.data, "data")
        latest: dict[str, HistoryAnnotation] = {}
        for annotation in task.annotations:
            refuse_nul(annotation.answers, f"{annotation.line_field}.result")
            field = f"{annotation.line_field}.result"
            answers = check_answers(
                self.schema, task.data, annotation.answers, field=field, partial=True
            )
            if not answers:
                self.counts.empty += 1
                continue
            key = annotation.annotator.key
            kept = latest.get(key)
            if kept is not None:
                self.counts.repeated += 1
                if (kept.submitted_at or self.now) > (annotation.submitted_at or self.now):
                    continue
            latest[key] = HistoryAnnotation(
                annotation.annotator, answers, annotation.submitted_at, annotation.duration_ms
            )
        gold = None
        if task.gold:  # checked as its annotation was, above, so its problems name that
            gold = check_answers(self.schema, task.data, task.gold, field="gold", partial=True)
        self.counts.cancelled += task.cancelled
        return HistoryTask(task.external_id, task.data, gold or None, list(latest.values()))

    def _existing(self, external_ids: list[str]) -> set[str]:
        if not external_ids:
            return set()
        query = select(Task.external_id).where(
            Task.project_id == self.project.id, Task.external_id.in_(external_ids)
        )
        return {e for e in self.session.scalars(query) if e is not None}

    # -- writing ----------------------------------------------------------------------------

    def write(self, tasks: list[HistoryTask]) -> None:
        for task in tasks:
            task_id = self.session.scalar(
                insert(Task)
                .values(
                    project_id=self.project.id,
                    external_id=task.external_id,
                    data=task.data,
                    gold=task.gold,
                    priority=0,
                    overlap=self.overlap,
                    n_submitted=len(task.annotations),
                    n_leased=0,
                    status=TaskStatus.open,
                    created_at=self.now,
                )
                .returning(Task.id)
            )
            assert task_id is not None
            self.task_ids.append(task_id)
            for annotation in task.annotations:
                self._label(task_id, annotation)
            self.counts.tasks += 1

    def _label(self, task_id: int, annotation: HistoryAnnotation) -> None:
        user_id = self._user(annotation.annotator)
        finished = annotation.submitted_at or self.now
        began = finished - timedelta(milliseconds=annotation.duration_ms or 0)
        assignment_id = self.session.scalar(
            insert(Assignment)
            .values(
                project_id=self.project.id,
                task_id=task_id,
                user_id=user_id,
                status=AssignmentStatus.submitted,
                leased_at=began,
                expires_at=finished,
                finished_at=finished,
            )
            .returning(Assignment.id)
        )
        self.session.execute(
            insert(Annotation).values(
                assignment_id=assignment_id,
                project_id=self.project.id,
                task_id=task_id,
                user_id=user_id,
                answers=annotation.answers,
                duration_ms=annotation.duration_ms,
                submitted_at=finished,
            )
        )
        self.counts.annotations += 1

    def _user(self, annotator: Annotator) -> int:
        """The Quorum user of an outside annotator: by email if one exists, else a new,
        inactive, password-less user under a placeholder address derived from the key."""
        known = self.people.get(annotator.key)
        if known is not None:
            return known
        refuse_nul([annotator.key, annotator.name], "completed_by")
        slug = "".join(c if c.isalnum() else "-" for c in annotator.key.lower()).strip("-")
        email = users.normalize_email(annotator.email or f"{slug}@{PLACEHOLDER_DOMAIN}")
        user = self.session.scalar(select(User).where(User.email == email))
        if user is None:
            # NOTE: not users.create_user, which commits: this import commits once, at the end.
            user = User(
                email=email,
                name=(annotator.name or annotator.key)[:200],
                password_hash=None,
                is_admin=False,
                is_active=False,
                pseudonym="a_" + secrets.token_hex(6),
                tier=1,
                created_at=self.now,
            )
            self.session.add(user)
            self.session.flush()
            self.counts.annotators += 1
        self.people[annotator.key] = user.id
        return user.id
