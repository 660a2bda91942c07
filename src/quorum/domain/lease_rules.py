"""The rules of the annotation loop as SQL expressions, shared by both databases.

Which tasks are due to an annotator, in which order they are handed out, when a submission
still has a slot: each rule is written once here, and both the PostgreSQL statements
(``leases_pg``) and the SQLite steps (``leases_sqlite``) are built from it.

To add a rule to the choice of the next task (qualification tasks first, hidden gold, tier
reservation, paused annotators, budgets), add a predicate to ``due_filter`` or a term to
``LEASE_ORDER``: both backends pick it up. A predicate may use ``user_id`` (an SQL expression:
a bound parameter, or the annotator found by token) and ``project_id``.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_

from quorum.db.models import Assignment, AssignmentStatus, Task, TaskStatus
from quorum.db.types import canonical_json
from quorum.domain.errors import Conflict, Invalid
from quorum.domain.questions import QuestionSchema, check_answers
from quorum.domain.text import refuse_nul

LEASED = AssignmentStatus.leased.value
EXPIRED = AssignmentStatus.expired.value
SUBMITTED = AssignmentStatus.submitted.value
SKIPPED = AssignmentStatus.skipped.value


class Refused(Enum):
    """Not allowed: a bad token, not a member, not the holder. Which one is worked out by the
    caller, off the hot path, so a refusal reports the same error as every other endpoint."""

    refused = "refused"


REFUSED = Refused.refused

# Among due tasks: higher priority first, then nearest completion, then import order. The
# partial index ix_tasks_due has exactly this order, so the choice reads the index in order.
LEASE_ORDER = (Task.priority.desc(), Task.n_submitted.desc(), Task.id)


def due_filter(
    project_id: ColumnElement[int], user_id: ColumnElement[int]
) -> list[ColumnElement[bool]]:
    """Tasks due to ``user_id``: open, with a free slot, never held by this annotator before."""
    had_it = exists().where(Assignment.task_id == Task.id, Assignment.user_id == user_id)
    return [
        Task.project_id == project_id,
        Task.status == TaskStatus.open.value,
        Task.n_submitted + Task.n_leased < Task.overlap,
        ~had_it,
    ]


def slot_free(status: ColumnElement[str]) -> ColumnElement[bool]:
    """Whether the assignment in ``status`` may turn into a label of its (locked) task.

    After the label, labels plus the task's other leases must still fit its overlap. A live
    lease counts in ``n_leased`` already, so this holds unless the overlap was lowered; an
    expired lease (a late submit) needs a slot that is still free.
    """
    return or_(
        and_(status == LEASED, Task.n_submitted + Task.n_leased <= Task.overlap),
        and_(status == EXPIRED, Task.n_submitted + Task.n_leased < Task.overlap),
    )


def slot_taken(task_id: int) -> Conflict:
    return Conflict(
        f"the lease on task {task_id} expired and its slot went to another annotator; "
        "ask for the next task"
    )


def refuse_finished(assignment_id: int, status: str) -> None:
    """A submitted or skipped assignment takes no more answers."""
    if status == SUBMITTED:
        raise Conflict(f"assignment {assignment_id} is already submitted")
    if status == SKIPPED:
        raise Conflict(f"assignment {assignment_id} was skipped; ask for the next task")


@lru_cache(maxsize=256)
def schema_from_text(text: str) -> QuestionSchema:
    """A project's schema from its stored JSON text (cached: every submit needs it)."""
    return QuestionSchema.model_validate_json(text)


def reads_task_data(schema: QuestionSchema) -> bool:
    """Whether checking answers needs the task's data (spans, rankings, preferences)."""
    return any(question.task_fields() for question in schema.questions)


def request_hash(assignment_id: int, answers: Any, duration_ms: int | None) -> str:
    body = {"assignment_id": assignment_id, "answers": answers, "duration_ms": duration_ms}
    return hashlib.sha256(canonical_json(body)).hexdigest()


@dataclass(frozen=True)
class Submission:
    """Answers as sent, with the Idempotency-Key and the digest of the request it keys."""

    assignment_id: int
    answers: Any
    duration_ms: int | None = None
    key: str | None = None

    @property
    def digest(self) -> str:
        return request_hash(self.assignment_id, self.answers, self.duration_ms)

    def is_replay(self, recorded_hash: str | None) -> bool:
        """True when this key already answered this very request; another body is refused."""
        if recorded_hash is None:
            return False
        if recorded_hash != self.digest:
            raise Invalid.one("Idempotency-Key", "was already used with a different request body")
        return True

    def validated(self, schema: QuestionSchema, data: Any) -> dict[str, Any]:
        refuse_nul(self.answers, "answers")
        return check_answers(schema, data, self.answers)


@dataclass(frozen=True)
class LeaseView:
    """A lease as its holder sees it: the assignment and the task's data, nothing more."""

    assignment_id: int
    task_id: int
    data: dict[str, Any]
    expires_at: datetime


@dataclass(frozen=True)
class SubmissionView:
    """A stored label, as the reply to its submit."""

    id: int
    assignment_id: int
    task_id: int
    answers: dict[str, Any]
    duration_ms: int | None
    submitted_at: datetime


@dataclass(frozen=True)
class AssignmentView:
    id: int
    task_id: int
    status: str
    leased_at: datetime
    expires_at: datetime
    finished_at: datetime | None
