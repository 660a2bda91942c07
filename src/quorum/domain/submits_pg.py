"""Submits on PostgreSQL: one statement when this process knows the project, else two.

A submit validates the answers in Python, then writes the slot, the assignment, the label, the
idempotency record and the pay in one statement that re-checks everything under lock. When
the process has not seen the assignment's project yet (``pg_statements.Hints``), it reads the
assignment first. Why a label is stored exactly once: docs/assignment.md.
"""

from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import (
    CTE,
    BigInteger,
    ClauseElement,
    ColumnElement,
    Integer,
    Text,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    update,
)

from quorum.db.engine import Flow
from quorum.db.models import (
    Account,
    Annotation,
    Assignment,
    IdempotencyRecord,
    LedgerEntry,
    LedgerKind,
    Project,
    Task,
)
from quorum.domain.errors import Conflict, Contended, Invalid
from quorum.domain.lease_rules import (
    LEASED,
    REFUSED,
    SUBMITTED,
    Refused,
    Submission,
    SubmissionView,
    late,
    reads_task_data,
    refusal_query,
    refuse_finished,
    schema_from_text,
    slot_free,
    slot_taken,
)
from quorum.domain.pg_statements import (
    ADMITTED,
    ASSIGNMENT,
    HINTS,
    KEY,
    NOW,
    PROJECT,
    USER,
    Hints,
    Who,
    budgeted,
    caller,
    hides_gold,
    open_status,
    statement,
    touch_statement,
)
from quorum.domain.questions import QuestionSchema
from quorum.domain.task_status import status_after

SUBMIT_ATTEMPTS = 3


def _read_assignment(by_token: bool) -> ClauseElement:
    """What a submit needs to know before it validates the answers (no lock: it writes later)."""
    me = caller(by_token)
    return (
        select(
            me.c.user_id,
            me.c.used_at,
            Assignment.status,
            Assignment.task_id,
            Assignment.project_id,
            Project.updated_at,
            cast(Project.schema, Text),
            hides_gold(),
            IdempotencyRecord.request_hash,
            IdempotencyRecord.response,
            func.coalesce(Project.policy["pay_per_task_cents"].as_integer(), 0) > 0,
            Assignment.expires_at,
            budgeted(),
        )
        .select_from(me)
        .join(Assignment, and_(Assignment.id == ASSIGNMENT, Assignment.user_id == me.c.user_id))
        .join(Project, Project.id == Assignment.project_id)
        .outerjoin(
            IdempotencyRecord,
            and_(IdempotencyRecord.user_id == me.c.user_id, IdempotencyRecord.key == KEY),
        )
    )


def _task_data(_: bool) -> ClauseElement:
    return select(Task.data).where(Task.id == bindparam("task_id", type_=BigInteger))


def _annotation(_: bool) -> ClauseElement:
    return select(
        Annotation.id,
        Annotation.assignment_id,
        Annotation.task_id,
        Annotation.answers,
        Annotation.duration_ms,
        Annotation.submitted_at,
    ).where(Annotation.id == bindparam("annotation_id", type_=BigInteger))


def _write_after_read(_: bool) -> ClauseElement:
    """The label, once the assignment was read and the answers checked (see ``_write``)."""
    within_budget = or_(
        _live(), ADMITTED, ~exists().where(Project.id == Assignment.project_id, budgeted())
    )
    target = (
        select(Assignment.id, Assignment.task_id, Assignment.status, Assignment.user_id)
        .where(
            Assignment.id == ASSIGNMENT,
            Assignment.user_id == USER,
            open_status(Assignment.status),
            within_budget,
        )
        .with_for_update(key_share=True)
        .cte("target")
    )
    return _write(target, select(null().label("used_at")).cte("me"))


def _live() -> ColumnElement[bool]:
    """On ``assignments``: a lease still running. A late label (any other open assignment) in
    a project with a budget needs ``budget.admit_late_label`` first (``ADMITTED``): its
    lease's share of the budget went back when it expired."""
    return and_(Assignment.status == LEASED, Assignment.expires_at > NOW)


def _write_known(by_token: bool) -> ClauseElement:
    """The label in one statement, when this process knows the assignment's project and its
    schema (``Hints``): the statement checks the caller, the holder, the project and the
    schema version itself, and changes nothing when any of them is not as expected."""
    return _write_known_as(by_token, bare=False)


def _write_known_bare(by_token: bool) -> ClauseElement:
    """``_write_known`` for a submit without an Idempotency-Key in a project that pays nothing
    per label (at the version the statement checks): no idempotency record, no ledger entry,
    and a plan without their two inserts."""
    return _write_known_as(by_token, bare=True)


def _write_known_as(by_token: bool, *, bare: bool) -> ClauseElement:
    me = caller(by_token)
    version = bindparam("version", type_=Project.updated_at.type)
    # A project that pays nothing has no budget: the bare statement needs no budget check.
    within_budget = () if bare else (or_(_live(), ADMITTED, ~budgeted()),)
    unchanged = exists().where(
        Project.id == Assignment.project_id, Project.updated_at == version, *within_budget
    )
    keyed = exists().where(IdempotencyRecord.user_id == me.c.user_id, IdempotencyRecord.key == KEY)
    target = (
        select(Assignment.id, Assignment.task_id, Assignment.status, Assignment.user_id)
        .join(me, Assignment.user_id == me.c.user_id)
        .where(
            Assignment.id == ASSIGNMENT,
            Assignment.project_id == PROJECT,
            open_status(Assignment.status),
            unchanged,
            *(() if bare else (~keyed,)),
        )
        .with_for_update(key_share=True, of=Assignment)
        .cte("target")
    )
    return _write(target, me, bare=bare)


def _write(target: CTE, me: CTE, *, bare: bool = False) -> ClauseElement:
    """Turn the ``target`` lease into a label in one statement; nothing happens unless its task
    still has the slot. Returns the caller's token use, the target's status and the label id.
    ``bare``: without the idempotency record and the ledger entry (``_write_known_bare``).

    NOTE: the target assignment is locked, then its task: the order every writer follows. A
    concurrent use of the same Idempotency-Key fails this statement on the unique key, and the
    flow runs again (reading first, so it replays or refuses).
    """
    slot = (
        update(Task)
        .where(Task.id == target.c.task_id, slot_free(target.c.status, target.c.user_id))
        .values(
            n_submitted=Task.n_submitted + 1,
            n_leased=Task.n_leased - case((target.c.status == LEASED, 1), else_=0),
            status=status_after(Task.n_submitted + 1),
        )
        .returning(Task.id)
        .cte("slot")
    )
    done = (
        update(Assignment)
        .where(Assignment.id == target.c.id, Assignment.task_id == slot.c.id)
        .values(status=SUBMITTED, finished_at=NOW)
        .returning(Assignment.id, Assignment.project_id, Assignment.task_id, Assignment.user_id)
        .cte("done")
    )
    columns = ["assignment_id", "project_id", "task_id", "user_id", "answers", "duration_ms"]
    saved = (
        insert(Annotation)
        .from_select(
            [*columns, "submitted_at"],
            select(
                done.c.id,
                done.c.project_id,
                done.c.task_id,
                done.c.user_id,
                bindparam("answers", type_=Annotation.answers.type),
                bindparam("duration_ms", type_=Integer),
                NOW,
            ),
            include_defaults=False,
        )
        .returning(Annotation.id, Annotation.user_id, Annotation.project_id)
        .cte("saved")
    )
    remembered = (
        insert(IdempotencyRecord)
        .from_select(
            ["user_id", "key", "request_hash", "status_code", "response", "created_at"],
            select(
                saved.c.user_id,
                KEY,
                bindparam("request_hash", type_=Text),
                literal(200),
                func.jsonb_build_object("annotation_id", saved.c.id),
                NOW,
            ).where(KEY.is_not(None)),
            include_defaults=False,
        )
        .cte("remembered")
    )
    reply = (
        select(me.c.used_at, target.c.status, saved.c.id, target.c.task_id)
        .select_from(me)
        .outerjoin(target, true())
        .outerjoin(saved, true())
    )
    return reply if bare else reply.add_cte(remembered, _earned(saved))


def _earned(saved: CTE) -> CTE:
    """The new label's pay, in the same statement: ``ledger.record_label``'s first entry
    (a new label is in no review, so its pay is payable at once); nothing when it pays 0."""
    rate = Project.policy["pay_per_task_cents"].as_integer()
    columns = ["kind", "user_id", "project_id", "annotation_id", "source", "target"]
    return (
        insert(LedgerEntry)
        .from_select(
            [*columns, "amount_cents", "reason", "created_at"],
            select(
                literal(LedgerKind.earning.value),
                saved.c.user_id,
                saved.c.project_id,
                saved.c.id,
                literal(Account.budget.value),
                literal(Account.payable.value),
                rate,
                literal(""),
                NOW,
            )
            .select_from(saved)
            .join(Project, Project.id == saved.c.project_id)
            .where(rate > 0),
            include_defaults=False,
        )
        .cte("earned")
    )


def submit(
    assignment_id: int,
    who: Who,
    submission: Submission,
    now: datetime,
    hints: Hints = HINTS,
    *,
    admitted: bool = False,
) -> Flow[SubmissionView | Refused]:
    """Record the holder's answers exactly once; with a key, a retry replays the first reply.

    In one statement when this process knows the assignment's project and schema (it leased
    it); otherwise, or when that statement changed nothing, by reading the assignment first.
    A late label in a project with a budget is written only when ``admitted``
    (``budget.admit_late_label`` ran in this transaction); otherwise it comes back REFUSED,
    and the API takes the session path, which admits first.
    """
    fields = {
        "assignment_id": assignment_id,
        "now": now,
        "duration_ms": submission.duration_ms,
        "key": submission.key,
        "request_hash": submission.digest if submission.key is not None else None,
        "admitted": admitted,
    }
    known = hints.known(assignment_id)
    clean = _checked(submission, known.schema) if known is not None else None
    if known is not None and clean is not None:
        project = {"project_id": known.project_id, "version": known.version}
        bare = submission.key is None and not known.pays
        write = _write_known_bare if bare else _write_known
        rows = yield statement(write, who, **fields, **project, answers=Jsonb(clean))
        if rows and rows[0][1] is not None:  # else: not as the hints said; read it all
            used_at, _, annotation_id, task_id = rows[0]
            touch = touch_statement(who, used_at, now)
            if touch is not None:
                yield touch
            if annotation_id is None:
                raise (yield from _refused_slot(who, assignment_id))
            return SubmissionView(
                annotation_id,
                assignment_id,
                task_id,
                clean,
                submission.duration_ms,
                now,
                known.hides,
            )
    return (yield from _read_then_write(submission, who, fields, now, hints))


def _checked(submission: Submission, schema: QuestionSchema) -> dict[str, Any] | None:
    """Valid answers, or None: invalid ones are reported by the slower path, after it has
    checked that the caller may submit at all."""
    try:
        return submission.validated(schema, {})
    except Invalid:
        return None


def _read_then_write(
    submission: Submission, who: Who, fields: dict[str, Any], now: datetime, hints: Hints
) -> Flow[SubmissionView | Refused]:
    assignment_id = submission.assignment_id
    for _ in range(SUBMIT_ATTEMPTS):
        ids = {"assignment_id": assignment_id, "key": submission.key}
        rows = yield statement(_read_assignment, who, **ids)
        if not rows:
            return REFUSED
        user_id, used_at, status, task_id, project_id, version, schema_text = rows[0][:7]
        hides, recorded, response, pays, expires_at, capped = rows[0][7:]
        hints.learnt(project_id, version, schema_text, hides, pays)
        touch = touch_statement(who, used_at, now)
        if touch is not None:
            yield touch
        if submission.is_replay(recorded):
            found = yield statement(_annotation, who, annotation_id=response["annotation_id"])
            return replayed(found, hides)
        refuse_finished(assignment_id, status)
        if capped and late(status, expires_at, now) and not fields["admitted"]:
            return REFUSED  # the session path admits it against the budget first
        schema = schema_from_text(schema_text)
        data: Any = {}
        if reads_task_data(schema):
            data = (yield statement(_task_data, who, task_id=task_id))[0][0]
        clean = submission.validated(schema, data)
        written = yield statement(
            _write_after_read, who, **fields, user_id=user_id, answers=Jsonb(clean)
        )
        _, target_status, annotation_id, _ = written[0]
        if target_status is None:
            continue  # the assignment changed since it was read: read it again
        if annotation_id is None:
            raise (yield from _refused_slot(who, assignment_id))
        return SubmissionView(
            annotation_id, assignment_id, task_id, clean, submission.duration_ms, now, hides
        )
    raise Contended(f"assignment {assignment_id} kept changing; try again")


def _refusal(_: bool) -> ClauseElement:
    return refusal_query(ASSIGNMENT)


def _refused_slot(who: Who, assignment_id: int) -> Flow[Conflict]:
    """The 409 of a label that found no slot, with the reason read after the fact."""
    rows = yield statement(_refusal, who, assignment_id=assignment_id)
    return slot_taken(*rows[0])


def replayed(rows: list[tuple[Any, ...]], hides_gold: bool) -> SubmissionView:
    if not rows:
        raise Conflict("the annotation this Idempotency-Key created no longer exists")
    id_, assignment_id, task_id, answers, duration_ms, submitted_at = rows[0]
    when = submitted_at.astimezone(UTC)
    return SubmissionView(
        id_, assignment_id, task_id, answers, duration_ms, when, hides_gold, replay=True
    )
