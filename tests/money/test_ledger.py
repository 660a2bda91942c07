"""The ledger: labels earn, wait for review, are reversed and reinstated; bonuses, adjustments,
statements and payouts; and, under any sequence of those, the books balance."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from tests.conftest import Factory
from tests.money.conftest import Paying, lease_within_budget, paying_project, submit_and_record

from quorum.db.models import (
    Annotation,
    LedgerEntry,
    LedgerKind,
    ReviewDecision,
    ReviewSource,
    ReviewStatus,
    Role,
)
from quorum.domain import assignments, dashboard, ledger, projects, reviews
from quorum.domain.errors import Conflict, Invalid

START = datetime(2030, 1, 1, tzinfo=UTC)


def _label(session: Session, world: Paying, who: int, now: datetime) -> Annotation | None:
    person = world.annotators[who]
    assignment = lease_within_budget(session, world.project, person, now)
    return None if assignment is None else submit_and_record(session, assignment, person, now)


def _review(
    session: Session,
    world: Paying,
    annotation: Annotation,
    decision: ReviewDecision | None,
    now: datetime,
) -> None:
    """Send a label to review (decision None) or decide its pending review (each posts)."""
    if decision is None:
        reviews.send_to_review(session, annotation, source=ReviewSource.sampled, now=now)
    else:
        pending = select(Annotation).where(Annotation.id == annotation.id)
        review = reviews._pending_review(session, annotation.id)
        assert review is not None and session.scalar(pending) is not None
        comment = "wrong" if decision is ReviewDecision.rejected else ""
        answers = {"label": "no"} if decision is ReviewDecision.corrected else None
        reviews.decide(
            session, world.project, Role.reviewer, review.id, world.reviewer.user,
            decision=decision, comment=comment, answers=answers, now=now,
        )  # fmt: skip


def _kinds(session: Session, annotation_id: int) -> list[str]:
    query = select(LedgerEntry.kind).where(LedgerEntry.annotation_id == annotation_id)
    return [k.value for k in session.scalars(query.order_by(LedgerEntry.id))]


def test_a_label_earns_once_and_follows_its_reviews(session: Session, make: Factory) -> None:
    world = paying_project(make, tasks=3)
    annotation = _label(session, world, 0, START)
    assert annotation is not None
    ledger.record_label(session, annotation.id, now=START)  # again: nothing more
    me = world.annotators[0].user.id
    assert _kinds(session, annotation.id) == ["earning"]
    assert ledger.balances(session, me) == ledger.Balances(pending=0, payable=25, paid=0)
    _review(session, world, annotation, None, START)
    assert ledger.balances(session, me) == ledger.Balances(pending=25, payable=0, paid=0)
    _review(session, world, annotation, ReviewDecision.rejected, START)
    assert ledger.balances(session, me) == ledger.Balances(0, 0, 0)
    assert ledger.project_spend(session, world.project.id) == 0
    _review(session, world, annotation, None, START)  # a second look...
    _review(session, world, annotation, ReviewDecision.accepted, START)  # ...accepts it
    assert _kinds(session, annotation.id) == [
        "earning",
        "hold",
        "reversal",
        "reinstatement",
        "release",
    ]
    assert ledger.balances(session, me) == ledger.Balances(0, 25, 0)
    second = _label(session, world, 0, START)
    assert second is not None
    _review(session, world, second, None, START)
    _review(session, world, second, ReviewDecision.corrected, START)  # paid: the work was done
    assert _kinds(session, second.id) == ["earning", "hold", "release"]
    assert ledger.balances(session, me) == ledger.Balances(0, 50, 0)
    assert ledger.project_spend(session, world.project.id) == 50


def test_a_label_sent_to_review_waits_for_it(session: Session, make: Factory) -> None:
    world = paying_project(make, tasks=1)
    annotation = _label(session, world, 0, START)
    assert annotation is not None
    reviews.send_to_review(session, annotation, source=ReviewSource.sampled, now=START)
    moves = [(e.source.value, e.target.value) for e in session.scalars(select(LedgerEntry))]
    assert moves == [("budget", "payable"), ("payable", "pending")]
    ledger.record_label(session, annotation.id, now=START)  # recorded where it belongs: no-op
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 2


def test_a_project_that_pays_nothing_records_nothing(session: Session, make: Factory) -> None:
    world = paying_project(make, tasks=1, policy={"pay_per_task_cents": 0})
    assert _label(session, world, 0, START) is not None
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 0


def test_a_label_earns_the_rate_of_its_submit_or_never(session: Session, make: Factory) -> None:
    """Submitted while the project paid nothing, a label stays unpaid after the rate goes up,
    through its reviews, and takes no share of the budget."""
    world = paying_project(make, tasks=3, policy={"pay_per_task_cents": 0, "budget_cents": 25})
    unpaid = _label(session, world, 0, START)
    assert unpaid is not None
    policy = {**world.project.policy, "pay_per_task_cents": 25}
    projects.update_project(session, world.project, {"policy": policy})
    for decision in (None, ReviewDecision.rejected, None, ReviewDecision.accepted):
        _review(session, world, unpaid, decision, START)
    assert _kinds(session, unpaid.id) == []
    paid = _label(session, world, 1, START)  # the budget's one share is still free
    assert paid is not None and _kinds(session, paid.id) == ["earning"]
    assert _label(session, world, 0, START) is None  # and now taken
    assert ledger.project_spend(session, world.project.id) == 25
    # The projects list shows what the ledger holds for each of them, not labels x rate.
    for who, cents in ((0, 0), (1, 25)):
        (row,) = dashboard.my_projects(session, world.annotators[who].user)
        assert row.my_earned_cents == cents


def test_a_retry_after_the_rate_went_up_earns_nothing(session: Session, make: Factory) -> None:
    """The same submit sent again (its Idempotency-Key) is the first one's reply: a label that
    earned nothing at its submit does not start earning when it is replayed."""
    world = paying_project(make, tasks=1, policy={"pay_per_task_cents": 0})
    person = world.annotators[0]
    lease = assignments.lease(session, world.project, person.user, now=START)
    assert lease is not None
    answers, key = {"label": "yes"}, "retry-1"
    first = assignments.submit(
        session, lease.assignment.id, person.user, answers, key=key, now=START
    )
    policy = {**world.project.policy, "pay_per_task_cents": 25}
    projects.update_project(session, world.project, {"policy": policy})
    again = assignments.submit(
        session, lease.assignment.id, person.user, answers, key=key, now=START
    )
    assert again.id == first.id
    assert _kinds(session, first.id) == []


def test_bonuses_and_adjustments_need_a_reason_and_a_member(
    session: Session, make: Factory
) -> None:
    world = paying_project(make, tasks=1)
    admin = make.person("admin", admin=True).user
    me = world.annotators[0].user
    ledger.grant(session, world.project, me, 500, reason="weekend shift", by=admin, now=START)
    ledger.grant(session, world.project, me, -120, reason="duplicate pay", by=admin,
                 kind=LedgerKind.adjustment, now=START)  # fmt: skip
    assert ledger.balances(session, me.id).payable == 380
    assert ledger.project_spend(session, world.project.id) == 380
    with pytest.raises(Invalid, match="reason"):
        ledger.grant(session, world.project, me, 5, reason="  ", by=admin)
    with pytest.raises(Invalid, match="positive"):
        ledger.grant(session, world.project, me, -5, reason="x", by=admin)
    with pytest.raises(Invalid, match="not a member"):
        ledger.grant(session, world.project, admin, 5, reason="x", by=admin)
    lines = ledger.statement(session, me).lines
    assert [(line.kind.value, line.amount_cents, line.reason) for line in lines] == [
        ("bonus", 500, "weekend shift"),
        ("adjustment", -120, "duplicate pay"),
    ]


def test_payouts_pay_each_period_once_and_never_twice(session: Session, make: Factory) -> None:
    world = paying_project(make, tasks=6)
    admin = make.person("admin", admin=True).user
    for day, who in ((0, 0), (1, 1), (40, 0)):  # two labels in January, one in February
        _label(session, world, who, START + timedelta(days=day))
    march = datetime(2030, 3, 5, tzinfo=UTC)
    february = ledger.pay_out(session, "2030-02", by=admin, now=march)  # paid late, out of order
    assert sorted(r.amount_cents for r in february) == [25, 50]
    assert ledger.pay_out(session, "2030-01", by=admin, now=march) == []  # already in February's
    with pytest.raises(Conflict):
        ledger.pay_out(session, "2030-02", by=admin, now=march)
    with pytest.raises(Invalid, match="not ended"):
        ledger.pay_out(session, "2030-03", by=admin, now=march)
    csv = ledger.payout_csv(february, "2030-02").splitlines()
    assert csv[0] == "period,user_id,pseudonym,email,name,amount_cents,amount"
    assert csv[1].endswith(",50,0.50") and len(csv) == 3
    me = world.annotators[0].user
    assert ledger.statement(session, me).balances == ledger.Balances(0, 0, 50)


def test_a_rejection_after_payout_is_deducted_from_the_next(
    session: Session, make: Factory
) -> None:
    world = paying_project(make, tasks=2)
    admin = make.person("admin", admin=True).user
    first = _label(session, world, 0, START)
    assert first is not None
    ledger.pay_out(session, "2030-01", by=admin, now=datetime(2030, 2, 1, tzinfo=UTC))
    later = datetime(2030, 2, 3, tzinfo=UTC)
    _review(session, world, first, None, later)
    _review(session, world, first, ReviewDecision.rejected, later)
    _label(session, world, 0, later)
    me = world.annotators[0].user.id
    assert ledger.balances(session, me) == ledger.Balances(pending=0, payable=0, paid=25)
    assert ledger.pay_out(session, "2030-02", by=admin, now=datetime(2030, 3, 1, tzinfo=UTC)) == []


def test_entries_cannot_be_changed_or_deleted(session: Session, make: Factory) -> None:
    world = paying_project(make, tasks=1)
    _label(session, world, 0, START)
    for statement in ("UPDATE ledger_entries SET amount_cents = 1", "DELETE FROM ledger_entries"):
        with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
            session.execute(text(statement))


# --- the books balance, whatever happens -------------------------------------------------------

YEARS = itertools.count(2040)
LABEL = st.tuples(st.just("label"), st.integers(0, 2))
SEND = st.tuples(st.just("send"), st.integers(0, 50))
DECIDE = st.tuples(st.just("decide"), st.integers(0, 50), st.sampled_from(list(ReviewDecision)))
OPERATIONS = st.lists(
    st.one_of(
        LABEL,
        LABEL,
        SEND,
        DECIDE,
        DECIDE,
        st.tuples(st.just("bonus"), st.integers(0, 2), st.integers(1, 900)),
        st.tuples(st.just("adjust"), st.integers(0, 2), st.integers(-300, 300).filter(bool)),
        st.tuples(st.just("payout"), st.just(0)),
        st.tuples(st.just("wait"), st.integers(1, 20)),
    ),
    min_size=6,
    max_size=30,
)


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=OPERATIONS)
def test_the_ledger_always_balances(
    session: Session, make: Factory, operations: list[tuple]
) -> None:  # type: ignore[type-arg]
    world = paying_project(make, tasks=12, annotators=3)
    admin = make.person("admin", admin=True).user
    # Payouts cover everyone: each example lives in a year of its own.
    now, labels, paid_months = datetime(next(YEARS), 1, 21, tzinfo=UTC), [], set()
    for operation in operations:
        now += timedelta(days=1)
        match operation:
            case ("label", who):
                found = _label(session, world, who, now)
                labels += [found] if found else []
            case ("send", k):
                waiting = _with_status(session, labels, pending=False)
                if waiting:
                    _review(session, world, waiting[k % len(waiting)], None, now)
            case ("decide", k, decision):
                waiting = _with_status(session, labels, pending=True)
                if waiting:
                    _review(session, world, waiting[k % len(waiting)], decision, now)
            case ("bonus", who, cents) | ("adjust", who, cents):
                kind = LedgerKind.bonus if operation[0] == "bonus" else LedgerKind.adjustment
                person = world.annotators[who].user
                ledger.grant(
                    session, world.project, person, cents, reason="r", by=admin, kind=kind, now=now
                )
            case ("payout", _):
                month = f"{now.year}-{now.month - 1:02d}" if now.month > 1 else None
                if month and month not in paid_months:
                    ledger.pay_out(session, month, by=admin, now=now)
                    paid_months.add(month)
            case ("wait", days):
                now += timedelta(days=days)
        _check_books(session, world)


def _with_status(session: Session, labels: list[Annotation], *, pending: bool) -> list[Annotation]:
    for label in labels:
        session.refresh(label)
    return [label for label in labels if (label.review_status is ReviewStatus.pending) == pending]


def _check_books(session: Session, world: Paying) -> None:
    """Every annotator's accounts hold exactly what their history says they should."""
    rate = 25
    grants_total = 0
    for person in world.annotators:
        me = person.user.id
        statement = ledger.statement(session, person.user)
        t, b = statement.totals, statement.balances
        flows = t.earned - t.reversed + t.reinstated + t.bonuses + t.adjustments
        assert flows == b.pending + b.payable + b.paid, (t, b)
        assert b.paid == t.paid_out and b.pending >= 0 and b.paid >= 0
        mine = session.scalars(
            select(Annotation.review_status).where(Annotation.user_id == me)
        ).all()
        assert b.pending == rate * sum(s is ReviewStatus.pending for s in mine)
        kept = sum(s is not ReviewStatus.rejected for s in mine)
        assert t.earned - t.reversed + t.reinstated == rate * kept
        grants_total += t.bonuses + t.adjustments
    kept_all = session.scalar(
        select(func.count()).where(
            Annotation.project_id == world.project.id,
            Annotation.review_status != ReviewStatus.rejected,
        )
    )
    assert ledger.project_spend(session, world.project.id) == rate * kept_all + grants_total
