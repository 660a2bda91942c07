"""Leases on PostgreSQL: each step is one statement, so a call costs a round trip.

A lease is one statement that finds the annotator (by API token, or by user id for pages),
returns the lease they hold, or chooses a due task, locks it (``FOR NO KEY UPDATE SKIP
LOCKED``), inserts the assignment and counts the slot. A project without the quality loop's
picks gets a smaller statement (``_lease_plain``). Expired leases are reclaimed by the next
lease (``_reclaim``); a skip gives the slot back in one statement. Submits: ``submits_pg``.

A flow is safe to run again from the top, and the drivers do so when a statement loses a race
on a unique key (two concurrent leases of one annotator). Why a slot is never handed out twice
and why the locks cannot deadlock: docs/assignment.md.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CTE,
    ClauseElement,
    ColumnElement,
    and_,
    exists,
    false,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    union_all,
    update,
)

from quorum.db.engine import Flow
from quorum.db.models import (
    Assignment,
    Project,
    Task,
)
from quorum.domain.errors import Conflict
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
    due_filter,
    gold_filter,
    plainly_blocked,
    qualification_filter,
    qualification_overlap,
    standing_query,
    work_filter,
)
from quorum.domain.pg_statements import (
    ADMITTED,
    ASSIGNMENT,
    CHECK_EXPIRED,
    HINTS,
    NOW,
    PROJECT,
    Hints,
    Who,
    caller,
    hides_gold,
    member,
    open_status,
    statement,
    touch_statement,
)
from quorum.domain.task_status import status_after

# Expired leases freed by one call; the next call frees the rest.
RECLAIM_BATCH = 1000


@dataclass(frozen=True)
class _Asking:
    """What both lease statements know of the caller before they pick a task."""

    me: CTE
    user_id: ColumnElement[int]
    held: CTE  # their live lease in the project, if any
    expired_waiting: ColumnElement[bool]  # when checked: expired leases to reclaim first
    # Whether they may be given a new task: a member, holding no lease, no expired leases to
    # reclaim first, and a project with a budget admitted them.
    may_pick: tuple[ColumnElement[bool], ...]


def _asking(me: CTE) -> _Asking:
    user_id = select(me.c.user_id).scalar_subquery()
    mine = (Assignment.project_id == PROJECT, Assignment.user_id == user_id)
    # NOTE: a CTE, so that it runs at most once per lease: written as a subquery, each pick
    # and the reply planned (and ran) it again, and each run reads every live lease of the
    # project whenever the planner serves it from uq_assignments_leased_holder.
    expiry = select(
        and_(
            CHECK_EXPIRED,
            exists().where(
                Assignment.project_id == PROJECT,
                Assignment.status == LEASED,
                Assignment.expires_at <= NOW,
            ),
        ).label("waiting")
    ).cte("expiry")
    expired_waiting = select(expiry.c.waiting).scalar_subquery()
    held = (
        select(Assignment.id, Assignment.task_id, Assignment.expires_at)
        .where(*mine, Assignment.status == LEASED, Assignment.expires_at > NOW)
        .cte("held")
    )
    # NOTE: a project with a budget leases only after budget.admit_lease counted under the
    # project's lock (``ADMITTED``, the session door); without it, the flow hands the call over.
    may_pick = (
        user_id.is_not(None),
        ~exists().where(*mine, Assignment.status == LEASED),
        ~expired_waiting,
        or_(ADMITTED, ~select(me.c.budgeted).scalar_subquery()),
    )
    return _Asking(me, user_id, held, expired_waiting, may_pick)


def _leased(asking: _Asking, chosen: CTE) -> CTE:
    """The new assignment of the task in ``chosen`` (none when nothing was chosen)."""
    me = asking.me
    expires_at = NOW + literal_column("interval '1 second'") * me.c.lease_seconds
    return (
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


def _reply(asking: _Asking, leased: CTE, counted: CTE, *more: ColumnElement[Any]) -> ClauseElement:
    """One row for a member (their held or new lease, the task's data, what the flow needs
    next, then ``more``); no row for anyone else."""
    me, held = asking.me, asking.held
    task_id = func.coalesce(leased.c.task_id, held.c.task_id)
    return (
        select(
            me.c.used_at,
            func.coalesce(leased.c.id, held.c.id),
            task_id,
            func.coalesce(leased.c.expires_at, held.c.expires_at),
            Task.data,
            asking.expired_waiting,
            me.c.budgeted,
            *more,
        )
        .select_from(me)
        .outerjoin(held, true())
        .outerjoin(leased, true())
        .outerjoin(Task, Task.id == task_id)
        .add_cte(counted)
    )


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
    asking = _asking(member(by_token))
    user_id, may_pick = asking.user_id, asking.may_pick
    known = standing_query(PROJECT, user_id).cte("standing")
    standing = _standing(known)
    qualification = (
        select(Task.id, literal(1).label("bump"))
        .where(*qualification_filter(PROJECT, user_id, standing), *may_pick)
        .order_by(Task.id)
        .limit(1)
        .with_for_update(key_share=True, of=Task)
        .cte("qualification_pick")
    )
    gold = (
        select(Task.id, literal(0).label("bump"))
        .where(*gold_filter(PROJECT, user_id, standing), *may_pick)
        .order_by(*GOLD_ORDER)
        .limit(1)
        .with_for_update(key_share=True, skip_locked=True, of=Task)
        .cte("gold_pick")
    )
    work = (
        select(Task.id, literal(0).label("bump"))
        .where(*work_filter(PROJECT, user_id, standing), *may_pick, ~exists(select(gold.c.id)))
        .order_by(*LEASE_ORDER)
        .limit(1)
        .with_for_update(key_share=True, skip_locked=True, of=Task)
        .cte("work_pick")
    )
    chosen = union_all(select(qualification), select(gold), select(work)).cte("chosen")
    leased = _leased(asking, chosen)
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
    return _reply(
        asking,
        leased,
        counted,
        select(known.c.ready_to_grade).scalar_subquery(),
        select(known.c.gold_rate > 0).scalar_subquery(),
    )


def _lease_plain(by_token: bool) -> ClauseElement:
    """``_lease`` for a project of ``lease_rules.plain_policy``: one pick, no standing.

    Returns the same columns as ``_lease`` and then whether the project is plain; when it is
    not (its policy changed, or the hint was wrong), it leases nothing and the flow asks with
    ``_lease``. Why: the three picks and the standing make ``_lease``'s plan several times
    larger, and PostgreSQL sets up every node of a plan on each execution, used or not (about
    half of a lease's database time; docs/assignment.md).
    """
    me = member(by_token, plain=True)
    asking = _asking(me)
    work = (
        select(Task.id)
        .where(
            *due_filter(PROJECT, asking.user_id),
            Task.min_tier <= select(me.c.tier).scalar_subquery(),
            select(me.c.plain).scalar_subquery(),
            ~plainly_blocked(PROJECT, asking.user_id),
            *asking.may_pick,
        )
        .order_by(*LEASE_ORDER)
        .limit(1)
        .with_for_update(key_share=True, skip_locked=True, of=Task)
        .cte("work_pick")
    )
    leased = _leased(asking, work)
    counted = (
        update(Task)
        .where(Task.id == leased.c.task_id)
        .values(n_leased=Task.n_leased + 1, status=status_after(Task.n_submitted))
        .cte("counted")
    )
    return _reply(asking, leased, counted, false(), false(), me.c.plain)


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
        rows = yield statement(
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
        touch = touch_statement(who, used_at, now)
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
        if not expired_waiting:
            return None
        yield statement(_reclaim, who, project_id=project_id, now=now)
        check_expired = False


def _skip(by_token: bool) -> ClauseElement:
    """Give a lease back in one statement; a skipped task is never offered to its skipper again.

    NOTE: locks the assignment, then its task, like a submit.
    """
    me = caller(by_token)
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
        .where(Assignment.id == target.c.id, open_status(target.c.status))
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
            select(hides_gold()).where(Project.id == target.c.project_id).scalar_subquery(),
        )
        .select_from(me)
        .join(target, true())
        .outerjoin(done, true())
        .add_cte(freed)
    )


def skip(assignment_id: int, who: Who, now: datetime) -> Flow[AssignmentView | Refused]:
    """Skip the caller's assignment; skipping it again changes nothing."""
    rows = yield statement(_skip, who, assignment_id=assignment_id, now=now)
    if not rows:
        return REFUSED
    used_at, assignment_id, task_id, status, leased_at, expires_at, finished_at, hides = rows[0]
    touch = touch_statement(who, used_at, now)
    if touch is not None:
        yield touch
    if status == SUBMITTED:
        raise Conflict(f"assignment {assignment_id} is already submitted")
    return AssignmentView(
        assignment_id, task_id, SKIPPED, leased_at, expires_at.astimezone(UTC), finished_at, hides
    )
