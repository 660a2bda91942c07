"""The payments ledger: append-only movements of integer cents between accounts.

Money sits in four kinds of account (``quorum.db.models.Account``): a project's ``budget``
(what the project spent is what left it), and per annotator ``pending`` (pay waiting for a
review), ``payable`` (due at the next payout) and ``paid``. Each entry moves a positive amount
from one account to another, so nothing is ever created or lost: an annotator's balances always
add up to what they earned, net of reversals, plus bonuses and adjustments (docs/payments.md).
Rows are never changed or deleted (database triggers refuse it); a mistake is corrected by a
new entry.

A label's pay follows its review status, and :func:`record_label` is the one entry point that
moves it: ``assignments.submit`` calls it after a submit, ``reviews`` after a label is sent to
review and after a decision, each in the same transaction as the change. NOTE: the API's submit
on PostgreSQL writes the label in one statement without a session; that statement posts the
new label's earning itself (``submits_pg._earned``, the same first entry as here), so every
label earns atomically with its writing on both doors.

==========================  =======================  ===========================
review status               where the label's pay is  entry that takes it there
==========================  =======================  ===========================
none, accepted, corrected   payable                   earning, release, reinstatement
pending                     pending                   hold, reinstatement
rejected                    back in the budget        reversal
==========================  =======================  ===========================

A label earns the project's ``pay_per_task_cents`` in force when it is submitted, once (a
unique index); a project that pays nothing records nothing. A label that earned nothing then
(submitted while the project paid nothing, or imported with its history) never earns: its
reviews move no money, and it takes no share of the budget (:func:`label_earned`). A rejection
after the payout takes the pay back from ``payable``, which may then go negative: the next
payout deducts it.
"""

import csv
import io
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, case, exists, func, insert, or_, select
from sqlalchemy.orm import Session

from quorum.db.models import (
    Account,
    Annotation,
    LedgerEntry,
    LedgerKind,
    Membership,
    Project,
    ReviewStatus,
    User,
)
from quorum.db.types import utcnow
from quorum.domain.errors import Conflict, Invalid, NotFound
from quorum.domain.pages import Page, paginate
from quorum.domain.text import refuse_nul

MAX_REASON = 500
MAX_GRANT_CENTS = 100_000_000
PAID_STATUSES = {ReviewStatus.none, ReviewStatus.accepted, ReviewStatus.corrected}
# The kind of entry that moves a label's pay from one account to another.
MOVES = {
    (Account.payable, Account.pending): LedgerKind.hold,
    (Account.pending, Account.payable): LedgerKind.release,
    (Account.pending, Account.budget): LedgerKind.reversal,
    (Account.payable, Account.budget): LedgerKind.reversal,
    (Account.budget, Account.pending): LedgerKind.reinstatement,
    (Account.budget, Account.payable): LedgerKind.reinstatement,
}


def _where_pay_belongs(status: ReviewStatus) -> Account:
    if status is ReviewStatus.pending:
        return Account.pending
    return Account.payable if status in PAID_STATUSES else Account.budget


# --- labels ------------------------------------------------------------------------------------


def record_label(
    session: Session, annotation_id: int, *, now: datetime | None = None, submitted: bool = False
) -> None:
    """Move one label's pay to where its review status says it belongs; does nothing when it is
    there already, so calling it again is harmless. ``submitted``: the label was just written
    (its submit), the one moment it earns. The caller commits."""
    now = now or utcnow()
    # NOTE: the label's row is locked so two postings for it (a decision racing a resubmission
    # to review) run one after the other; it is the row their callers write anyway.
    row = session.execute(
        select(Annotation.user_id, Annotation.project_id, Annotation.review_status, Project.policy)
        .join(Project, Project.id == Annotation.project_id)
        .where(Annotation.id == annotation_id)
        .with_for_update(of=Annotation, key_share=True)
    ).first()
    if row is None:
        raise NotFound(f"no annotation {annotation_id}")
    user_id, project_id, status, policy = row
    wanted = _where_pay_belongs(ReviewStatus(status))
    amount, now_at = _label_position(session, annotation_id)
    if amount is None:  # never earned: it earns at its submit, or never (module doc)
        rate = int(policy.get("pay_per_task_cents") or 0)
        if submitted and rate and wanted is not Account.budget:
            _post(
                session,
                LedgerKind.earning,
                user_id,
                project_id,
                Account.budget,
                wanted,
                rate,
                annotation_id=annotation_id,
                now=now,
            )
        return
    if now_at is not wanted:
        _post(
            session,
            MOVES[now_at, wanted],
            user_id,
            project_id,
            now_at,
            wanted,
            amount,
            annotation_id=annotation_id,
            now=now,
        )


def label_earned() -> ColumnElement[bool]:
    """SQL: the query's annotation earned its pay. Those that did not cost the project nothing,
    whatever their review status: labels imported with their history, labels submitted while
    the project paid nothing."""
    return exists().where(
        LedgerEntry.annotation_id == Annotation.id, LedgerEntry.kind == LedgerKind.earning
    )


def _label_position(session: Session, annotation_id: int) -> tuple[int | None, Account]:
    """What the label earned (None: nothing yet) and the account its pay sits in now."""
    entries = session.execute(
        select(LedgerEntry.kind, LedgerEntry.target, LedgerEntry.amount_cents)
        .where(LedgerEntry.annotation_id == annotation_id)
        .order_by(LedgerEntry.id)
    ).all()
    if not entries:
        return None, Account.budget
    earned = next(amount for kind, _, amount in entries if kind is LedgerKind.earning)
    return int(earned), Account(entries[-1][1])


def _post(
    session: Session,
    kind: LedgerKind,
    user_id: int,
    project_id: int | None,
    source: Account,
    target: Account,
    amount: int,
    *,
    annotation_id: int | None = None,
    reason: str = "",
    period: str | None = None,
    by: int | None = None,
    now: datetime,
) -> int:
    entry_id = session.scalar(
        insert(LedgerEntry)
        .values(
            kind=kind,
            user_id=user_id,
            project_id=project_id,
            annotation_id=annotation_id,
            source=source,
            target=target,
            amount_cents=amount,
            reason=reason,
            period=period,
            created_by=by,
            created_at=now,
        )
        .returning(LedgerEntry.id)
    )
    assert entry_id is not None
    return int(entry_id)


# --- bonuses and adjustments ---------------------------------------------------------------------


def grant(
    session: Session,
    project: Project,
    annotator: User,
    amount_cents: int,
    *,
    reason: str,
    by: User,
    kind: LedgerKind = LedgerKind.bonus,
    now: datetime | None = None,
) -> LedgerEntry:
    """A bonus (a positive amount) or an adjustment (either sign) paid from the project's budget
    to a member, with the reason they will read on their statement."""
    if kind not in (LedgerKind.bonus, LedgerKind.adjustment):
        raise Invalid.one("kind", "must be bonus or adjustment")
    if kind is LedgerKind.bonus and amount_cents <= 0:
        raise Invalid.one("amount_cents", "a bonus must be positive; use an adjustment to deduct")
    if amount_cents == 0 or abs(amount_cents) > MAX_GRANT_CENTS:
        raise Invalid.one("amount_cents", f"must be non-zero and at most {MAX_GRANT_CENTS}")
    reason = reason.strip()
    refuse_nul(reason, "reason")
    if not 1 <= len(reason) <= MAX_REASON:
        raise Invalid.one("reason", f"say why, in 1 to {MAX_REASON} characters")
    member = select(Membership.user_id).where(
        Membership.project_id == project.id, Membership.user_id == annotator.id
    )
    if session.scalar(member) is None:
        raise Invalid.one("user", f"{annotator.email} is not a member of this project")
    source, target = Account.budget, Account.payable
    if amount_cents < 0:
        source, target = target, source
    now = now or utcnow()
    entry_id = _post(
        session,
        kind,
        annotator.id,
        project.id,
        source,
        target,
        abs(amount_cents),
        reason=reason,
        by=by.id,
        now=now,
    )
    session.commit()
    entry = session.get(LedgerEntry, entry_id)
    assert entry is not None
    return entry


# --- reading ---------------------------------------------------------------------------------


def _signed_for(account: Account) -> Any:
    """Each entry's effect on one account: + when it flows in, - when it flows out."""
    return case(
        (LedgerEntry.target == account, LedgerEntry.amount_cents),
        (LedgerEntry.source == account, -LedgerEntry.amount_cents),
        else_=0,
    )


def earned_in_projects(
    session: Session, user_id: int, project_ids: Collection[int]
) -> dict[int, int]:
    """Per project, the cents the annotator's work there has put in their accounts (pending,
    payable or paid: what left the budget for them, net of reversals; bonuses included)."""
    query = (
        select(LedgerEntry.project_id, func.sum(_signed_for(Account.budget)))
        .where(LedgerEntry.user_id == user_id, LedgerEntry.project_id.in_(list(project_ids)))
        .group_by(LedgerEntry.project_id)
    )
    return {pid: -int(total or 0) for pid, total in session.execute(query) if pid is not None}


def project_entries(
    session: Session, project: Project, *, cursor: str | None, limit: int
) -> Page[LedgerEntry]:
    """Every entry charged to the project's budget, oldest first."""
    query = select(LedgerEntry).where(LedgerEntry.project_id == project.id)
    return paginate(session, query, LedgerEntry.id, cursor, limit)


def recent_entries(
    session: Session, project: Project, *, limit: int = 50
) -> list[tuple[LedgerEntry, str]]:
    """The project's newest entries, with the annotator's pseudonym."""
    query = (
        select(LedgerEntry, User.pseudonym)
        .join(User, User.id == LedgerEntry.user_id)
        .where(LedgerEntry.project_id == project.id)
        .order_by(LedgerEntry.id.desc())
        .limit(limit)
    )
    return [(entry, pseudonym) for entry, pseudonym in session.execute(query)]


def spend_by_day(session: Session, project_id: int) -> list[tuple[datetime, int]]:
    """The project's spend, cumulative, at the end of each day it changed (UTC)."""
    query = select(LedgerEntry.created_at, -_signed_for(Account.budget)).where(
        LedgerEntry.project_id == project_id
    )
    days: dict[datetime, int] = {}
    for moment, cents in session.execute(query.order_by(LedgerEntry.id)):
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        days[day] = days.get(day, 0) + int(cents)
    total, points = 0, []
    for day in sorted(days):
        total += days[day]
        points.append((day, total))
    return points


def project_spend(session: Session, project_id: int) -> int:
    """Cents that left the project's budget, net of what came back."""
    query = select(func.coalesce(func.sum(-_signed_for(Account.budget)), 0)).where(
        LedgerEntry.project_id == project_id
    )
    return int(session.scalar(query) or 0)


@dataclass(frozen=True)
class Balances:
    pending: int
    payable: int
    paid: int


@dataclass(frozen=True)
class Totals:
    """What happened to an annotator's money in a period, by kind of entry."""

    earned: int = 0
    reversed: int = 0
    reinstated: int = 0
    bonuses: int = 0
    adjustments: int = 0
    paid_out: int = 0


@dataclass(frozen=True)
class Line:
    """One entry as the annotator sees it: ``amount`` is signed (+ to them, - from them)."""

    id: int
    created_at: datetime
    kind: LedgerKind
    project_id: int | None
    project: str | None
    annotation_id: int | None
    amount_cents: int
    account: Account
    reason: str
    period: str | None


@dataclass(frozen=True)
class Statement:
    user_id: int
    since: datetime | None
    until: datetime | None
    totals: Totals
    balances: Balances  # at ``until`` (now when open-ended)
    lines: list[Line]


def balances(session: Session, user_id: int, *, until: datetime | None = None) -> Balances:
    """An annotator's pending, payable and paid cents, from every entry before ``until``."""

    def total(account: Account) -> Any:
        return func.coalesce(func.sum(_signed_for(account)), 0)

    query = select(total(Account.pending), total(Account.payable), total(Account.paid))
    query = query.where(LedgerEntry.user_id == user_id)
    if until is not None:
        query = query.where(LedgerEntry.created_at < until)
    pending, payable, paid = session.execute(query).one()
    return Balances(int(pending), int(payable), int(paid))


def statement(
    session: Session,
    annotator: User,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Statement:
    """An annotator's entries in ``[since, until)``, their totals, and the balances at the end."""
    query = (
        select(LedgerEntry, Project.name)
        .outerjoin(Project, Project.id == LedgerEntry.project_id)
        .where(LedgerEntry.user_id == annotator.id)
        .order_by(LedgerEntry.id)
    )
    if since is not None:
        query = query.where(LedgerEntry.created_at >= since)
    if until is not None:
        query = query.where(LedgerEntry.created_at < until)
    lines = [_line(entry, name) for entry, name in session.execute(query)]
    return Statement(
        annotator.id,
        since,
        until,
        _totals(lines),
        balances(session, annotator.id, until=until),
        lines,
    )


def _line(entry: LedgerEntry, project: str | None) -> Line:
    """The entry from the annotator's side: into or out of their accounts."""
    mine = entry.target if entry.target is not Account.budget else entry.source
    sign = -1 if entry.target is Account.budget else 1
    return Line(
        entry.id,
        entry.created_at,
        entry.kind,
        entry.project_id,
        project,
        entry.annotation_id,
        sign * entry.amount_cents,
        mine,
        entry.reason,
        entry.period,
    )


def _totals(lines: list[Line]) -> Totals:
    def total(*kinds: LedgerKind) -> int:
        return sum(line.amount_cents for line in lines if line.kind in kinds)

    return Totals(
        earned=total(LedgerKind.earning),
        reversed=-total(LedgerKind.reversal),
        reinstated=total(LedgerKind.reinstatement),
        bonuses=total(LedgerKind.bonus),
        adjustments=total(LedgerKind.adjustment),
        paid_out=total(LedgerKind.payout),
    )


# --- payouts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayoutRow:
    user_id: int
    pseudonym: str
    email: str
    name: str
    amount_cents: int


def period_end(period: str) -> datetime:
    """The end of a monthly period ``YYYY-MM``: the first moment of the next month, UTC."""
    try:
        start = datetime.strptime(period, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise Invalid.one("period", f"{period!r} is not a month such as 2026-11") from None
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def pay_out(
    session: Session, period: str, *, by: User, now: datetime | None = None
) -> list[PayoutRow]:
    """Pay every annotator what became payable before the end of ``period`` (``YYYY-MM``) and
    was not paid yet; once per period.

    What is due counts payable money that arrived before the period ended, minus every payout
    ever made, so periods may be paid late or out of order and nothing is paid twice.
    """
    until = period_end(period)
    now = now or utcnow()
    if until > now:
        raise Invalid.one("period", f"{period} has not ended yet")
    _lock_payouts(session)
    if session.scalar(
        select(exists().where(LedgerEntry.kind == LedgerKind.payout, LedgerEntry.period == period))
    ):
        raise Conflict(f"{period} was paid out already")
    payable = _signed_for(Account.payable)
    counted = or_(LedgerEntry.kind == LedgerKind.payout, LedgerEntry.created_at < until)
    due = func.coalesce(func.sum(case((counted, payable), else_=0)), 0)
    query = select(LedgerEntry.user_id, due).group_by(LedgerEntry.user_id)
    for user_id, owed in session.execute(query.order_by(LedgerEntry.user_id)).all():
        if owed > 0:
            _post(
                session,
                LedgerKind.payout,
                user_id,
                None,
                Account.payable,
                Account.paid,
                int(owed),
                period=period,
                by=by.id,
                now=now,
            )
    session.commit()
    return payout_rows(session, period)


def _lock_payouts(session: Session) -> None:
    """One payout at a time (PostgreSQL; SQLite writers are serial already).

    NOTE: an advisory lock held to the end of the transaction: two admins paying the same
    period at once would otherwise both see it unpaid.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(0x51_50_41_59)))  # "QPAY"


def payout_rows(session: Session, period: str) -> list[PayoutRow]:
    """Who was paid how much for ``period``, by user id."""
    query = (
        select(User.id, User.pseudonym, User.email, User.name, LedgerEntry.amount_cents)
        .join(User, User.id == LedgerEntry.user_id)
        .where(LedgerEntry.kind == LedgerKind.payout, LedgerEntry.period == period)
        .order_by(User.id)
    )
    return [PayoutRow(*row) for row in session.execute(query)]


def payout_csv(rows: list[PayoutRow], period: str) -> str:
    """The payout file: one line per annotator, amounts in cents and in currency units."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["period", "user_id", "pseudonym", "email", "name", "amount_cents", "amount"])
    for row in rows:
        amount = f"{row.amount_cents // 100}.{row.amount_cents % 100:02d}"
        writer.writerow(
            [period, row.user_id, row.pseudonym, row.email, row.name, row.amount_cents, amount]
        )
    return out.getvalue()
