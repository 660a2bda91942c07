"""The rules of the annotation loop as SQL expressions, shared by both databases.

Which tasks are due to an annotator, in which order they are handed out, when a submission
still has a slot: each rule is written once here, and both the PostgreSQL statements
(``leases_pg``) and the SQLite steps (``leases_sqlite``) are built from it.

To add a rule to the choice of the next task (qualification tasks first, hidden gold, tier
reservation, paused annotators, budgets), add a predicate to ``due_filter`` or a term to
``LEASE_ORDER``: both backends pick it up. A predicate may use ``user_id`` (an SQL expression:
a bound parameter, or the annotator found by token) and ``project_id``.

The quality loop's rules (docs/quality.md) need the caller's *standing* in the project, read
once per lease by :func:`standing_query`: whether they are blocked (paused, failed the
qualification, below ``min_tier``, missing a required domain), still qualifying, their tier,
where the qualification tasks end, and the gold coin. A lease then picks from one of three
places, each a filter here: the next qualification task (:func:`qualification_filter`), a
hidden gold task (:func:`gold_filter`, when the coin says so and real work is due too), or real
work (:func:`work_filter`).
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, literal, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from quorum.db.models import (
    AnnotatorDomain,
    Assignment,
    AssignmentStatus,
    Membership,
    Project,
    ProjectDomain,
    ProjectWorker,
    Task,
    TaskStatus,
    User,
)
from quorum.db.types import canonical_json
from quorum.domain.errors import Conflict, Invalid
from quorum.domain.pause import FAILED, PASSED, excluded
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
    return [
        Task.project_id == project_id,
        Task.status == TaskStatus.open.value,
        Task.n_submitted + Task.n_leased < Task.overlap,
        ~had_it(user_id),
    ]


# Hidden gold is handed out newest first: an order that the index ix_tasks_gold_due (without
# DESC columns, so SQLite can reflect it) gives by scanning backwards.
GOLD_ORDER = (Task.priority.desc(), Task.n_submitted.desc(), Task.id.desc())


def had_it(user_id: ColumnElement[int]) -> ColumnElement[bool]:
    return exists().where(Assignment.task_id == Task.id, Assignment.user_id == user_id)


def standing_query(
    project_id: ColumnElement[int], user_id: ColumnElement[int]
) -> Select[int, bool, bool, int, float, bool]:
    """The caller's standing in the project, one row: ``tier, blocked, qualifying, qual_last,
    gold_rate, ready_to_grade``.

    - ``blocked``: paused here, failed the qualification, below the policy's ``min_tier``, or
      missing one of its required domains (at the level it asks);
    - ``qualifying``: the policy has a qualification the caller has not been graded on yet;
    - ``qual_last``: the id of the last qualification task (the project's first
      ``qualification.tasks`` gold tasks; 0 without a qualification);
    - ``ready_to_grade``: qualifying, and every qualification task already held once.
    """
    policy = Project.policy
    n_qual = policy[("qualification", "tasks")].as_integer()
    # NOTE: OFFSET cannot see the outer query's columns (SQLite), so it reads the policy again.
    n_own = select(n_qual).where(Project.id == project_id).scalar_subquery()
    gold_ids = select(Task.id).where(Task.project_id == project_id, Task.gold.is_not(None))
    nth_gold = gold_ids.order_by(Task.id).offset(n_own - 1).limit(1).scalar_subquery()
    last_gold = select(func.max(Task.id)).where(
        Task.project_id == project_id, Task.gold.is_not(None)
    )
    qual_last = case(
        (n_qual.is_(None), 0), else_=func.coalesce(nth_gold, last_gold.scalar_subquery(), 0)
    )
    state = func.coalesce(ProjectWorker.qualification, "")
    # A failed annotator is blocked, not qualifying: nothing is left to grade for them.
    qualifying = and_(n_qual.is_not(None), state != PASSED, state != FAILED)
    missing_domain = exists().where(
        ProjectDomain.project_id == project_id,
        ~exists().where(
            AnnotatorDomain.user_id == user_id,
            AnnotatorDomain.domain == ProjectDomain.domain,
            AnnotatorDomain.level >= ProjectDomain.min_level,
        ),
    )
    blocked = or_(
        ProjectWorker.paused_at.is_not(None),
        state == FAILED,
        User.tier < func.coalesce(policy["min_tier"].as_integer(), 1),
        missing_domain,
    )
    left = exists().where(
        Task.project_id == project_id,
        Task.gold.is_not(None),
        Task.id <= qual_last,
        ~had_it(user_id),
    )
    return (
        select(
            User.tier.label("tier"),
            blocked.label("blocked"),
            qualifying.label("qualifying"),
            qual_last.label("qual_last"),
            func.coalesce(policy["gold_rate"].as_float(), 0).label("gold_rate"),
            and_(qualifying, qual_last > 0, ~left).label("ready_to_grade"),
        )
        .select_from(User)
        .join(Project, Project.id == project_id)
        .outerjoin(
            ProjectWorker,
            and_(ProjectWorker.project_id == project_id, ProjectWorker.user_id == User.id),
        )
        .where(User.id == user_id)
    )


def plain_policy(project_id: ColumnElement[int]) -> ColumnElement[bool]:
    """On a row of ``projects`` joined here: whether a lease in the project needs none of the
    quality loop's picks (no qualification, no hidden gold, no ``min_tier``, no required
    domains). A caller's standing there is only :func:`plainly_blocked`, and the next task is
    the first of :func:`due_filter` in ``LEASE_ORDER`` that their tier may take."""
    policy = Project.policy
    return and_(
        policy[("qualification", "tasks")].as_integer().is_(None),
        func.coalesce(policy["gold_rate"].as_float(), 0) == 0,
        func.coalesce(policy["min_tier"].as_integer(), 1) <= 1,
        ~exists().where(ProjectDomain.project_id == project_id),
    )


def plainly_blocked(
    project_id: ColumnElement[int], user_id: ColumnElement[int]
) -> ColumnElement[bool]:
    """``standing_query``'s ``blocked`` in a project of :func:`plain_policy`: paused there, or
    failed a qualification the project has since dropped."""
    return exists().where(
        ProjectWorker.project_id == project_id,
        ProjectWorker.user_id == user_id,
        or_(ProjectWorker.paused_at.is_not(None), ProjectWorker.qualification == FAILED),
    )


@dataclass(frozen=True)
class Standing:
    """The caller's standing as SQL expressions: columns of a CTE on PostgreSQL (read once per
    statement), bound parameters on SQLite (read by a query first)."""

    tier: ColumnElement[int]
    blocked: ColumnElement[bool]
    qualifying: ColumnElement[bool]
    qual_last: ColumnElement[int]
    hides_gold: ColumnElement[bool]
    gold_coin: ColumnElement[bool]


def qualification_filter(
    project_id: ColumnElement[int], user_id: ColumnElement[int], standing: Standing
) -> list[ColumnElement[bool]]:
    """The caller's next qualification task (in id order): any they never held, no slot
    needed (everyone who qualifies answers every one; see :func:`qualification_overlap`)."""
    return [
        ~standing.blocked,
        standing.qualifying,
        Task.project_id == project_id,
        Task.gold.is_not(None),
        Task.id <= standing.qual_last,
        ~had_it(user_id),
    ]


def qualification_overlap(bump: ColumnElement[int] | int) -> ColumnElement[int]:
    """A task's overlap once leased: unchanged for work; for a qualification task (``bump``
    1) exactly its labels plus leases, this one included, so each qualifier brings the slot
    they take and the task is complete whenever no qualifier is still on it."""
    flag = bump if isinstance(bump, ColumnElement) else literal(bump)
    return case((flag == 1, Task.n_submitted + Task.n_leased + 1), else_=Task.overlap)


def work_filter(
    project_id: ColumnElement[int], user_id: ColumnElement[int], standing: Standing
) -> list[ColumnElement[bool]]:
    """Real work due to the caller: due, not reserved for a higher tier, not a qualification
    task, and no gold task when the project hides its gold (those come through the coin)."""
    return [
        ~standing.blocked,
        ~standing.qualifying,
        *due_filter(project_id, user_id),
        or_(Task.gold.is_(None), and_(~standing.hides_gold, Task.id > standing.qual_last)),
        Task.min_tier <= standing.tier,
    ]


def gold_filter(
    project_id: ColumnElement[int], user_id: ColumnElement[int], standing: Standing
) -> list[ColumnElement[bool]]:
    """A hidden gold task for the caller, when the coin (``gold_rate``) says so and real work
    is due to them as well: gold only ever comes mixed into work, so the task that follows a
    204 is never a check. Gold tasks keep their overlap, so no gold task is shown to more
    annotators than a real task's overlap."""
    work_due = exists(select(Task.id).where(*work_filter(project_id, user_id, standing)))
    return [
        ~standing.blocked,
        ~standing.qualifying,
        standing.gold_coin,
        *due_filter(project_id, user_id),
        Task.gold.is_not(None),
        Task.id > standing.qual_last,
        Task.min_tier <= standing.tier,
        work_due,
    ]


def slot_free(status: ColumnElement[str], user_id: ColumnElement[int]) -> ColumnElement[bool]:
    """Whether the assignment in ``status``, held by ``user_id``, may turn into a label of its
    (locked) task.

    After the label, labels plus the task's other leases must still fit its overlap. A live
    lease counts in ``n_leased`` already, so this holds unless the overlap was lowered. An
    expired lease (a late submit) needs what a new lease would: a slot still free, open to the
    holder's tier (once its slot went back, the quality loop may have reserved the task's next
    slot for a higher tier, ``tasks.min_tier``), a holder not paused in the project (a
    pause frees the annotator's leases: a label after it would be paid for and left out), and
    a holder still a member of it (removing a member frees their leases too).
    The holder's tier, pause and membership are read last, so a live lease never reads them.
    """
    return or_(
        and_(status == LEASED, Task.n_submitted + Task.n_leased <= Task.overlap),
        and_(
            status == EXPIRED,
            Task.n_submitted + Task.n_leased < Task.overlap,
            Task.min_tier <= select(User.tier).where(User.id == user_id).scalar_subquery(),
            ~excluded(Task.project_id, user_id),
            member_of(Task.project_id, user_id),
        ),
    )


def member_of(
    project_id: ColumnElement[int] | InstrumentedAttribute[int],
    user_id: ColumnElement[int] | InstrumentedAttribute[int],
) -> ColumnElement[bool]:
    """SQL: whether the user is a member of the project (any role labels)."""
    return exists().where(Membership.project_id == project_id, Membership.user_id == user_id)


def refusal_query(assignment_id: ColumnElement[int]) -> Select[bool, int, int, bool]:
    """Why a late label found no slot (read only then): ``paused, min_tier, tier, member``."""
    return (
        select(
            excluded(Task.project_id, Assignment.user_id),
            Task.min_tier,
            User.tier,
            member_of(Task.project_id, Assignment.user_id),
        )
        .select_from(Assignment)
        .join(Task, Task.id == Assignment.task_id)
        .join(User, User.id == Assignment.user_id)
        .where(Assignment.id == assignment_id)
    )


def slot_taken(
    paused: bool = False, min_tier: int = 1, tier: int = 1, member: bool = True
) -> Conflict:
    """The 409 of a label that found no slot, saying why (the columns of ``refusal_query``).

    NOTE: the message never names the task: where the project hides its gold, annotators see
    tasks by handle only, and a real id would be a tell.
    """
    if not member:
        return Conflict(
            "you are no longer a member of this project; your lease on this task was freed "
            "when you were removed"
        )
    if paused:
        return Conflict(
            "you are paused in this project; your lease on this task was freed when you were paused"
        )
    if min_tier > tier:
        return Conflict(
            f"the lease on this task expired and its next slot is now reserved for tier "
            f"{min_tier} or above; ask for the next task"
        )
    return Conflict(
        "the lease on this task expired and its slot went to another annotator; ask for the "
        "next task"
    )


def refuse_finished(assignment_id: int, status: str) -> None:
    """A submitted or skipped assignment takes no more answers."""
    if status == SUBMITTED:
        raise Conflict(f"assignment {assignment_id} is already submitted")
    if status == SKIPPED:
        raise Conflict(f"assignment {assignment_id} was skipped; ask for the next task")


def late(status: str, expires_at: datetime, now: datetime) -> bool:
    """Whether a label on an open assignment (leased or expired) would be late: its lease is
    past its time, reclaimed or not yet. It then needs a slot still free and, in a project
    with a budget, a share of the budget (``budget.admit_late_label``)."""
    return status == EXPIRED or expires_at <= now


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
            raise Invalid.one(
                "Idempotency-Key",
                "was already used for another request (another assignment, other answers or "
                "another duration); give each submission its own key",
            )
        return True

    def validated(self, schema: QuestionSchema, data: Any) -> dict[str, Any]:
        refuse_nul(self.answers, "answers")
        return check_answers(schema, data, self.answers)


class Grade(Enum):
    """The caller answered every qualification task: grade them, then ask again."""

    grade = "grade"


GRADE = Grade.grade


def task_ref(task_id: int, assignment_id: int, hides_gold: bool) -> int:
    """The id of a task as its annotator sees it.

    NOTE: where gold is hidden, task ids would tell gold apart when gold tasks were imported
    apart from the rest (a block of ids). The annotator then sees their own handle on the task:
    the id of their assignment, which is unique to them and that task and says nothing else.
    """
    return assignment_id if hides_gold else task_id


@dataclass(frozen=True)
class LeaseView:
    """A lease as its holder sees it: the assignment and the task's data, nothing more."""

    assignment_id: int
    task_id: int
    data: dict[str, Any]
    expires_at: datetime
    hides_gold: bool = False

    @property
    def task_ref(self) -> int:
        return task_ref(self.task_id, self.assignment_id, self.hides_gold)


@dataclass(frozen=True)
class SubmissionView:
    """A stored label, as the reply to its submit."""

    id: int
    assignment_id: int
    task_id: int
    answers: dict[str, Any]
    duration_ms: int | None
    submitted_at: datetime
    hides_gold: bool = False
    replay: bool = False  # the first reply again (an Idempotency-Key seen before): nothing new

    @property
    def task_ref(self) -> int:
        return task_ref(self.task_id, self.assignment_id, self.hides_gold)


@dataclass(frozen=True)
class AssignmentView:
    id: int
    task_id: int
    status: str
    leased_at: datetime
    expires_at: datetime
    finished_at: datetime | None
    hides_gold: bool = False

    @property
    def task_ref(self) -> int:
        return task_ref(self.task_id, self.id, self.hides_gold)
