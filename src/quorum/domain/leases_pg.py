"""The annotation loop on PostgreSQL: each step is one statement, so a call costs a round trip.

A lease is one statement that finds the annotator (by API token, or by user id for pages),
returns the lease they hold, or chooses a due task, locks it (``FOR NO KEY UPDATE SKIP
LOCKED``), inserts the assignment and counts the slot. A submit reads the assignment (one
statement), validates the answers in Python, then writes the slot, the assignment, the label
and the idempotency record in a second statement that re-checks everything under lock.

Statements are built with SQLAlchemy Core from the shared rules (``lease_rules``), compiled
once for psycopg, and run as raw SQL by a flow driver (``quorum.db.engine``): in a session, or
on the event loop. A flow is safe to run again from the top, and the drivers do so when a
statement loses a race on a unique key (two concurrent leases of one annotator).

Why a slot is never handed out twice and why the locks cannot deadlock: docs/assignment.md.
"""

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import cache
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import (
    CTE,
    BigInteger,
    Boolean,
    ClauseElement,
    ColumnElement,
    Integer,
    Text,
    and_,
    bindparam,
    case,
    cast,
    exists,
    false,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import InstrumentedAttribute

from quorum.db.engine import Flow, Statement
from quorum.db.models import (
    Account,
    Annotation,
    ApiToken,
    Assignment,
    IdempotencyRecord,
    LedgerEntry,
    LedgerKind,
    Membership,
    Project,
    Task,
    User,
)
from quorum.domain.errors import Conflict, Invalid
from quorum.domain.lease_rules import (
    EXPIRED,
    GOLD_ORDER,
    GRADE,
    LEASE_ORDER,
    LEASED,
    REFUSED,
    SKIPPED,
    SUBMITTED,
    AssignmentView,
    Grade,
    LeaseView,
    Refused,
    Standing,
    Submission,
    SubmissionView,
    due_filter,
    gold_filter,
    plain_policy,
    plainly_blocked,
    qualification_filter,
    qualification_overlap,
    reads_task_data,
    refuse_finished,
    schema_from_text,
    slot_free,
    slot_taken,
    standing_query,
    work_filter,
)
from quorum.domain.policy import DEFAULT_LEASE_SECONDS
from quorum.domain.questions import QuestionSchema
from quorum.domain.task_status import status_after

# Expired leases freed by one call; the next call frees the rest.
RECLAIM_BATCH = 1000
# A token's last use is written at most this often, so reads stay reads.
TOKEN_TOUCH = timedelta(minutes=1)
SUBMIT_ATTEMPTS = 3

_DIALECT = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
PROJECT = bindparam("project_id", type_=BigInteger)
USER = bindparam("user_id", type_=BigInteger)
TOKEN = bindparam("token_hash", type_=Text)
ASSIGNMENT = bindparam("assignment_id", type_=BigInteger)
NOW = bindparam("now", type_=Assignment.leased_at.type)
CHECK_EXPIRED = bindparam("check_expired", type_=Boolean)
ADMITTED = bindparam("admitted", type_=Boolean)
KEY = bindparam("key", type_=Text)


@dataclass(frozen=True)
class Token:
    """The caller, known by the SHA-256 of their API token (the REST API)."""

    digest: str


@dataclass(frozen=True)
class UserId:
    """The caller, already signed in (web pages, the CLI, tests)."""

    id: int


Who = Token | UserId


Build = Callable[[bool], ClauseElement]  # by_token -> statement


def _statement(build: Build, who: Who, **params: Any) -> Statement:
    sql, constants = _compiled(build, isinstance(who, Token))
    caller = {"token_hash": who.digest} if isinstance(who, Token) else {"user_id": who.id}
    return Statement(sql, {**constants, **caller, **params})


@cache
def _compiled(build: Build, by_token: bool) -> tuple[str, dict[str, Any]]:
    """The statement's SQL for psycopg, with its constants written in as literals.

    NOTE: psycopg prepares a statement after a few runs and PostgreSQL then plans it once for
    any parameters. A status given as a parameter would hide which partial index applies
    (``WHERE status = 'open'``), so such a generic plan would sort every task of the project;
    with the constants in the text, the generic plan reads ix_tasks_due in order.
    """
    compiled = build(by_token).compile(dialect=_DIALECT)
    sql = compiled.string
    for name, value in compiled.params.items():
        if value is not None:
            sql = sql.replace(f"%({name})s", _literal(value))
    return sql, {}


def _literal(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, tuple) and all(isinstance(part, str) for part in value):
        return "ARRAY[" + ", ".join(_literal(part) for part in value) + "]"  # a JSON path
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"no SQL literal for the constant {value!r}")
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def _open(status: ColumnElement[str] | InstrumentedAttribute[Any]) -> ColumnElement[bool]:
    """Leased or expired: not yet submitted or skipped. (An OR, not IN: SQLAlchemy renders an
    IN list only when it has the values, and these statements are compiled once, ahead.)"""
    return or_(status == LEASED, status == EXPIRED)


# --- who is calling --------------------------------------------------------------------------


def _member(by_token: bool, *, plain: bool = False) -> CTE:
    """The calling member of the project, their token's last use, the project's lease time,
    and whether the project has a budget (``quorum.domain.budget``); for the plain lease also
    the caller's tier and whether the project is plain (``lease_rules.plain_policy``)."""
    stored = Project.policy["lease_seconds"].as_integer()
    lease_seconds = func.coalesce(stored, DEFAULT_LEASE_SECONDS).label("lease_seconds")
    rate = func.coalesce(Project.policy["pay_per_task_cents"].as_integer(), 0)
    budgeted = and_(Project.policy["budget_cents"].as_integer().is_not(None), rate > 0)
    project: tuple[ColumnElement[Any], ...] = (lease_seconds, budgeted.label("budgeted"))
    if plain:
        project += (User.tier.label("tier"), plain_policy(PROJECT).label("plain"))
    if by_token:
        query = (
            select(Membership.user_id, ApiToken.last_used_at.label("used_at"), *project)
            .select_from(ApiToken)
            .join(User, User.id == ApiToken.user_id)
            .join(Membership, Membership.user_id == ApiToken.user_id)
            .where(ApiToken.token_hash == TOKEN, ApiToken.revoked_at.is_(None), User.is_active)
        )
    else:
        query = select(Membership.user_id, null().label("used_at"), *project).where(
            Membership.user_id == USER
        )
        if plain:
            query = query.join(User, User.id == Membership.user_id)
    query = query.join(Project, Project.id == Membership.project_id)
    return query.where(Membership.project_id == PROJECT).cte("me")


def _user(by_token: bool) -> CTE:
    """The calling user (in any project) and their token's last use."""
    if not by_token:
        return select(USER.label("user_id"), null().label("used_at")).cte("me")
    return (
        select(ApiToken.user_id, ApiToken.last_used_at.label("used_at"))
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == TOKEN, ApiToken.revoked_at.is_(None), User.is_active)
        .cte("me")
    )


def _touch_token(_: bool) -> ClauseElement:
    stale = NOW - literal_column("interval '1 minute'")
    return (
        update(ApiToken)
        .where(ApiToken.token_hash == TOKEN)
        .where(or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < stale))
        .values(last_used_at=NOW)
    )


def _touch(who: Who, used_at: datetime | None, now: datetime) -> Statement | None:
    """The statement recording a token's use, when its last recorded use is old enough."""
    if not isinstance(who, Token) or (used_at is not None and now - used_at < TOKEN_TOUCH):
        return None
    return _statement(_touch_token, who, now=now)


# --- lease ------------------------------------------------------------------------------------


def _lease(by_token: bool) -> ClauseElement:
    """Return the caller's live lease, or lease them the next task, in one statement.

    The caller's standing (``lease_rules.standing_query``) is read once, then one of three
    picks runs, the others cut off by one-time filters: the next qualification task, a hidden
    gold task (when the coin drawn here says so), or real work in ``LEASE_ORDER``.

    NOTE: the chosen task is locked FOR NO KEY UPDATE SKIP LOCKED: concurrent leases never wait
    for each other, and the lock re-checks the free slot on the task's newest version before
    the slot is counted. Qualification tasks have no slot to protect and every qualifier needs
    each of them, so that pick waits for the lock instead (a skip would read as "nothing left
    to qualify on"); the lease holds no other lock meanwhile. The unique index of leased
    assignments on (project, annotator) makes a second concurrent lease of one annotator fail;
    the flow then returns the first.
    """
    me = _member(by_token)
    user_id = select(me.c.user_id).scalar_subquery()
    mine = (Assignment.project_id == PROJECT, Assignment.user_id == user_id)
    holds_any = exists().where(*mine, Assignment.status == LEASED)
    expired_waiting = exists().where(
        Assignment.project_id == PROJECT, Assignment.status == LEASED, Assignment.expires_at <= NOW
    )
    held = (
        select(Assignment.id, Assignment.task_id, Assignment.expires_at)
        .where(*mine, Assignment.status == LEASED, Assignment.expires_at > NOW)
        .cte("held")
    )
    # NOTE: a project with a budget leases only after budget.admit_lease counted under the
    # project's lock (``ADMITTED``, the session door); without it, the flow hands the call over.
    budgeted = select(me.c.budgeted).scalar_subquery()
    common = (
        user_id.is_not(None),
        ~holds_any,
        ~and_(CHECK_EXPIRED, expired_waiting),
        or_(ADMITTED, ~budgeted),
    )
    known = standing_query(PROJECT, user_id).cte("standing")
    standing = _standing(known)
    qualification = (
        select(Task.id, literal(1).label("bump"))
        .where(*qualification_filter(PROJECT, user_id, standing), *common)
        .order_by(Task.id)
        .limit(1)
        .with_for_update(key_share=True, of=Task)
        .cte("qualification_pick")
    )
    gold = (
        select(Task.id, literal(0).label("bump"))
        .where(*gold_filter(PROJECT, user_id, standing), *common)
        .order_by(*GOLD_ORDER)
        .limit(1)
        .with_for_update(key_share=True, skip_locked=True, of=Task)
        .cte("gold_pick")
    )
    work = (
        select(Task.id, literal(0).label("bump"))
        .where(*work_filter(PROJECT, user_id, standing), *common, ~exists(select(gold.c.id)))
        .order_by(*LEASE_ORDER)
        .limit(1)
        .with_for_update(key_share=True, skip_locked=True, of=Task)
        .cte("work_pick")
    )
    chosen = union_all(select(qualification), select(gold), select(work)).cte("chosen")
    expires_at = NOW + literal_column("interval '1 second'") * me.c.lease_seconds
    leased = (
        insert(Assignment)
        .from_select(
            ["project_id", "task_id", "user_id", "status", "leased_at", "expires_at"],
            select(PROJECT, chosen.c.id, me.c.user_id, literal(LEASED), NOW, expires_at)
            .select_from(chosen)
            .join(me, true()),
            include_defaults=False,
        )
        .returning(Assignment.id, Assignment.task_id, Assignment.expires_at)
        .cte("leased")
    )
    overlap = qualification_overlap(chosen.c.bump)
    counted = (
        update(Task)
        .where(Task.id == leased.c.task_id, Task.id == chosen.c.id)
        .values(
            n_leased=Task.n_leased + 1,
            overlap=overlap,
            status=status_after(Task.n_submitted, overlap),
        )
        .cte("counted")
    )
    task_id = func.coalesce(leased.c.task_id, held.c.task_id)
    return (
        select(
            me.c.used_at,
            func.coalesce(leased.c.id, held.c.id),
            task_id,
            func.coalesce(leased.c.expires_at, held.c.expires_at),
            Task.data,
            expired_waiting,
            me.c.budgeted,
            select(known.c.ready_to_grade).scalar_subquery(),
            select(known.c.gold_rate > 0).scalar_subquery(),
        )
        .select_from(me)
        .outerjoin(held, true())
        .outerjoin(leased, true())
        .outerjoin(Task, Task.id == task_id)
        .add_cte(counted)
    )


def _lease_plain(by_token: bool) -> ClauseElement:
    """``_lease`` for a project of ``lease_rules.plain_policy``: one pick, no standing.

    Returns the same columns as ``_lease`` and then whether the project is plain; when it is
    not (its policy changed, or the hint was wrong), it leases nothing and the flow asks with
    ``_lease``. Why: the three picks and the standing make ``_lease``'s plan several times
    larger, and PostgreSQL sets up every node of a plan on each execution, used or not (about
    half of a lease's database time; docs/assignment.md).
    """
    me = _member(by_token, plain=True)
    user_id = select(me.c.user_id).scalar_subquery()
    mine = (Assignment.project_id == PROJECT, Assignment.user_id == user_id)
    expired_waiting = exists().where(
        Assignment.project_id == PROJECT, Assignment.status == LEASED, Assignment.expires_at <= NOW
    )
    held = (
        select(Assignment.id, Assignment.task_id, Assignment.expires_at)
        .where(*mine, Assignment.status == LEASED, Assignment.expires_at > NOW)
        .cte("held")
    )
    work = (
        select(Task.id)
        .where(
            *due_filter(PROJECT, user_id),
            Task.min_tier <= select(me.c.tier).scalar_subquery(),
            select(me.c.plain).scalar_subquery(),
            ~plainly_blocked(PROJECT, user_id),
            ~exists().where(*mine, Assignment.status == LEASED),
            ~and_(CHECK_EXPIRED, expired_waiting),
            or_(ADMITTED, ~select(me.c.budgeted).scalar_subquery()),
        )
        .order_by(*LEASE_ORDER)
        .limit(1)
        .with_for_update(key_share=True, skip_locked=True, of=Task)
        .cte("work_pick")
    )
    expires_at = NOW + literal_column("interval '1 second'") * me.c.lease_seconds
    leased = (
        insert(Assignment)
        .from_select(
            ["project_id", "task_id", "user_id", "status", "leased_at", "expires_at"],
            select(PROJECT, work.c.id, me.c.user_id, literal(LEASED), NOW, expires_at)
            .select_from(work)
            .join(me, true()),
            include_defaults=False,
        )
        .returning(Assignment.id, Assignment.task_id, Assignment.expires_at)
        .cte("leased")
    )
    counted = (
        update(Task)
        .where(Task.id == leased.c.task_id)
        .values(n_leased=Task.n_leased + 1, status=status_after(Task.n_submitted))
        .cte("counted")
    )
    task_id = func.coalesce(leased.c.task_id, held.c.task_id)
    return (
        select(
            me.c.used_at,
            func.coalesce(leased.c.id, held.c.id),
            task_id,
            func.coalesce(leased.c.expires_at, held.c.expires_at),
            Task.data,
            expired_waiting,
            me.c.budgeted,
            false(),
            false(),
            me.c.plain,
        )
        .select_from(me)
        .outerjoin(held, true())
        .outerjoin(leased, true())
        .outerjoin(Task, Task.id == task_id)
        .add_cte(counted)
    )


def _standing(known: CTE) -> Standing:
    """The standing CTE's columns as one-row subqueries, and the gold coin drawn once.

    NOTE: random() sits in a CTE, which PostgreSQL evaluates once; written in the pick's WHERE
    it would be drawn again for every task the index walk looks at.
    """
    coin = select((func.random() < known.c.gold_rate).label("gold_coin")).cte("coin")
    tier, blocked, qualifying, last, rate = (
        select(column).scalar_subquery()
        for column in (
            known.c.tier,
            known.c.blocked,
            known.c.qualifying,
            known.c.qual_last,
            known.c.gold_rate > 0,
        )
    )
    return Standing(
        tier, blocked, qualifying, last, rate, select(coin.c.gold_coin).scalar_subquery()
    )


def _reclaim(_: bool) -> ClauseElement:
    """Expire a project's leases past their time and give their slots back.

    NOTE: leases are taken with SKIP LOCKED (one being submitted late is left to that submit),
    then their tasks are locked in id order before their counts change, as every writer that
    holds several tasks does, so two reclaims cannot deadlock.
    """
    expired = (
        select(Assignment.id)
        .where(
            Assignment.project_id == PROJECT,
            Assignment.status == LEASED,
            Assignment.expires_at <= NOW,
        )
        .order_by(Assignment.id)
        .limit(RECLAIM_BATCH)
        .with_for_update(key_share=True, skip_locked=True)
        .cte("expired")
    )
    marked = (
        update(Assignment)
        .where(Assignment.id == expired.c.id)
        .values(status=EXPIRED, finished_at=NOW)
        .returning(Assignment.task_id)
        .cte("marked")
    )
    freed = select(marked.c.task_id, func.count().label("n")).group_by(marked.c.task_id).cte()
    locked = (
        select(Task.id)
        .where(Task.id.in_(select(freed.c.task_id)))
        .order_by(Task.id)
        .with_for_update(key_share=True)
        .cte("locked")
    )
    return (
        update(Task)
        .where(Task.id == freed.c.task_id, Task.id == locked.c.id)
        .values(n_leased=Task.n_leased - freed.c.n, status=status_after(Task.n_submitted))
    )


def lease(
    project_id: int,
    who: Who,
    now: datetime,
    hints: "Hints | None" = None,
    *,
    admitted: bool = False,
) -> Flow[LeaseView | Refused | Grade | None]:
    """The caller's live lease in the project, a new one, None when nothing is due, REFUSED,
    or GRADE when the caller has held every qualification task (the session path grades them
    and asks again).

    Expired leases of the project are reclaimed first and the lease asked again, so an expired
    lease frees its slot without any background process. A project with a budget is leased
    from only when ``admitted`` (``budget.admit_lease`` ran in this transaction); otherwise it
    comes back REFUSED, and the API takes the session path, which admits first.
    """
    hints = hints or HINTS
    check_expired = True
    while True:
        plain = project_id not in hints.not_plain
        rows = yield _statement(
            _lease_plain if plain else _lease,
            who,
            project_id=project_id,
            now=now,
            check_expired=check_expired,
            admitted=admitted,
        )
        if not rows:
            return REFUSED
        used_at, assignment_id, task_id, expires_at, data, expired_waiting, budgeted = rows[0][:7]
        grade, hides = rows[0][7:9]
        if plain and not rows[0][9]:
            hints.not_plain.add(project_id)
            continue
        touch = _touch(who, used_at, now)
        if touch is not None:
            yield touch
        if assignment_id is not None:
            hints.leased(assignment_id, project_id)
            view = LeaseView(assignment_id, task_id, data, expires_at.astimezone(UTC), hides)
            return view
        if budgeted and not admitted:
            return REFUSED
        if grade:
            return GRADE
        if not (expired_waiting and check_expired):
            return None
        yield _statement(_reclaim, who, project_id=project_id, now=now)
        check_expired = False


# --- submit -----------------------------------------------------------------------------------


def _read_assignment(by_token: bool) -> ClauseElement:
    """What a submit needs to know before it validates the answers (no lock: it writes later)."""
    me = _user(by_token)
    return (
        select(
            me.c.user_id,
            me.c.used_at,
            Assignment.status,
            Assignment.task_id,
            Assignment.project_id,
            Project.updated_at,
            cast(Project.schema, Text),
            _hides_gold(),
            IdempotencyRecord.request_hash,
            IdempotencyRecord.response,
            func.coalesce(Project.policy["pay_per_task_cents"].as_integer(), 0) > 0,
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
    target = (
        select(Assignment.id, Assignment.task_id, Assignment.status, Assignment.user_id)
        .where(Assignment.id == ASSIGNMENT, Assignment.user_id == USER, _open(Assignment.status))
        .with_for_update(key_share=True)
        .cte("target")
    )
    return _write(target, select(null().label("used_at")).cte("me"))


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
    me = _user(by_token)
    version = bindparam("version", type_=Project.updated_at.type)
    unchanged = exists().where(Project.id == Assignment.project_id, Project.updated_at == version)
    keyed = exists().where(IdempotencyRecord.user_id == me.c.user_id, IdempotencyRecord.key == KEY)
    target = (
        select(Assignment.id, Assignment.task_id, Assignment.status, Assignment.user_id)
        .join(me, Assignment.user_id == me.c.user_id)
        .where(
            Assignment.id == ASSIGNMENT,
            Assignment.project_id == PROJECT,
            _open(Assignment.status),
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
        .where(Task.id == target.c.task_id, slot_free(target.c.status))
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


@dataclass(frozen=True)
class Known:
    """A project as a submit's hints know it, at ``version``."""

    project_id: int
    version: datetime
    schema: QuestionSchema
    hides: bool
    pays: bool


class Hints:
    """What this process learnt that lets a submit skip reading: the project of the leases it
    handed out, and the schema (and its version) of projects it saw. Only hints: the statement
    that uses them checks them, and a stale one just costs the usual read."""

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self.projects: OrderedDict[int, int] = OrderedDict()  # assignment -> project
        # project -> (version, schema, whether it hides gold, whether a label earns pay)
        self.schemas: dict[int, tuple[datetime, str, bool, bool]] = {}
        # Projects whose leases need the quality loop's picks (``_lease``, not ``_lease_plain``)
        self.not_plain: set[int] = set()

    def leased(self, assignment_id: int, project_id: int) -> None:
        self.projects[assignment_id] = project_id
        if len(self.projects) > self.size:
            self.projects.popitem(last=False)

    def learnt(
        self, project_id: int, version: datetime, schema_text: str, hides: bool, pays: bool
    ) -> None:
        self.schemas[project_id] = (version, schema_text, hides, pays)

    def known(self, assignment_id: int) -> "Known | None":
        """What this process knows of the assignment's project, if anything (the version is
        checked by the statement: a policy change updates it too)."""
        project_id = self.projects.pop(assignment_id, None)
        found = self.schemas.get(project_id) if project_id is not None else None
        if project_id is None or found is None:
            return None
        schema = schema_from_text(found[1])
        if reads_task_data(schema):
            return None
        return Known(project_id, found[0], schema, hides=found[2], pays=found[3])


HINTS = Hints()


def submit(
    assignment_id: int, who: Who, submission: Submission, now: datetime, hints: Hints = HINTS
) -> Flow[SubmissionView | Refused]:
    """Record the holder's answers exactly once; with a key, a retry replays the first reply.

    In one statement when this process knows the assignment's project and schema (it leased
    it); otherwise, or when that statement changed nothing, by reading the assignment first.
    """
    fields = {
        "assignment_id": assignment_id,
        "now": now,
        "duration_ms": submission.duration_ms,
        "key": submission.key,
        "request_hash": submission.digest if submission.key is not None else None,
    }
    known = hints.known(assignment_id)
    clean = _checked(submission, known.schema) if known is not None else None
    if known is not None and clean is not None:
        project = {"project_id": known.project_id, "version": known.version}
        bare = submission.key is None and not known.pays
        write = _write_known_bare if bare else _write_known
        rows = yield _statement(write, who, **fields, **project, answers=Jsonb(clean))
        if rows and rows[0][1] is not None:  # else: not as the hints said; read it all
            used_at, _, annotation_id, task_id = rows[0]
            touch = _touch(who, used_at, now)
            if touch is not None:
                yield touch
            if annotation_id is None:
                raise slot_taken(task_id)
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
        rows = yield _statement(_read_assignment, who, **ids)
        if not rows:
            return REFUSED
        user_id, used_at, status, task_id, project_id, version, schema_text = rows[0][:7]
        hides, recorded, response, pays = rows[0][7:]
        hints.learnt(project_id, version, schema_text, hides, pays)
        touch = _touch(who, used_at, now)
        if touch is not None:
            yield touch
        if submission.is_replay(recorded):
            found = yield _statement(_annotation, who, annotation_id=response["annotation_id"])
            return replayed(found, hides)
        refuse_finished(assignment_id, status)
        schema = schema_from_text(schema_text)
        data: Any = {}
        if reads_task_data(schema):
            data = (yield _statement(_task_data, who, task_id=task_id))[0][0]
        clean = submission.validated(schema, data)
        written = yield _statement(
            _write_after_read, who, **fields, user_id=user_id, answers=Jsonb(clean)
        )
        _, target_status, annotation_id, _ = written[0]
        if target_status is None:
            continue  # the assignment changed since it was read: read it again
        if annotation_id is None:
            raise slot_taken(task_id)
        return SubmissionView(
            annotation_id, assignment_id, task_id, clean, submission.duration_ms, now, hides
        )
    raise Conflict(f"assignment {assignment_id} kept changing; try again")


# --- skip -------------------------------------------------------------------------------------


def _skip(by_token: bool) -> ClauseElement:
    """Give a lease back in one statement; a skipped task is never offered to its skipper again.

    NOTE: locks the assignment, then its task, like a submit.
    """
    me = _user(by_token)
    target = (
        select(
            Assignment.id,
            Assignment.task_id,
            Assignment.status,
            Assignment.leased_at,
            Assignment.expires_at,
            Assignment.finished_at,
            Assignment.project_id,
        )
        .where(Assignment.id == ASSIGNMENT, Assignment.user_id == me.c.user_id)
        .with_for_update(key_share=True, of=Assignment)
        .cte("target")
    )
    freed = (
        update(Task)
        .where(Task.id == target.c.task_id, target.c.status == LEASED)
        .values(n_leased=Task.n_leased - 1, status=status_after(Task.n_submitted))
        .cte("freed")
    )
    done = (
        update(Assignment)
        .where(Assignment.id == target.c.id, _open(target.c.status))
        .values(status=SKIPPED, finished_at=NOW)
        .returning(Assignment.finished_at)
        .cte("done")
    )
    return (
        select(
            me.c.used_at,
            target.c.id,
            target.c.task_id,
            target.c.status,
            target.c.leased_at,
            target.c.expires_at,
            func.coalesce(done.c.finished_at, target.c.finished_at),
            select(_hides_gold()).where(Project.id == target.c.project_id).scalar_subquery(),
        )
        .select_from(me)
        .join(target, true())
        .outerjoin(done, true())
        .add_cte(freed)
    )


def skip(assignment_id: int, who: Who, now: datetime) -> Flow[AssignmentView | Refused]:
    """Skip the caller's assignment; skipping it again changes nothing."""
    rows = yield _statement(_skip, who, assignment_id=assignment_id, now=now)
    if not rows:
        return REFUSED
    used_at, assignment_id, task_id, status, leased_at, expires_at, finished_at, hides = rows[0]
    touch = _touch(who, used_at, now)
    if touch is not None:
        yield touch
    if status == SUBMITTED:
        raise Conflict(f"assignment {assignment_id} is already submitted")
    return AssignmentView(
        assignment_id, task_id, SKIPPED, leased_at, expires_at.astimezone(UTC), finished_at, hides
    )


def replayed(rows: list[tuple[Any, ...]], hides_gold: bool) -> SubmissionView:
    if not rows:
        raise Conflict("the annotation this Idempotency-Key created no longer exists")
    id_, assignment_id, task_id, answers, duration_ms, submitted_at = rows[0]
    return SubmissionView(
        id_, assignment_id, task_id, answers, duration_ms, submitted_at.astimezone(UTC), hides_gold
    )


def _hides_gold() -> ColumnElement[bool]:
    """On ``projects``: whether the project mixes in hidden gold (ids are then aliased)."""
    return func.coalesce(Project.policy["gold_rate"].as_float(), 0) > 0
