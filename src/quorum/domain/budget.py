"""Project budgets: ``next`` hands out no work that would take the project past ``budget_cents``.

Work is committed when it is leased: a project has committed the labels it pays for (those
that earned, not rejected in review) plus its live leases, at ``pay_per_task_cents`` each;
labels that earned nothing (imported with their history, or submitted while the project paid
nothing) commit nothing. :func:`admit_lease`, called by the lease before it chooses a task,
admits a new lease only while one more would still fit, so the labels a budget pays for are
exactly ``budget_cents // pay_per_task_cents`` when the annotators use their leases (an expired
or skipped lease gives its share back).

Concurrency: the check and the lease must be one step, or two annotators could both take the
last share. In a project with a budget the lease therefore first locks the project's row (FOR
NO KEY UPDATE, the lock imports take, which foreign-key checks of new rows do not wait for),
then counts, then leases, and the lock lasts until the lease commits; the next lease counts
after it. On SQLite the lease's write transaction serialises it already. A project without a
budget (or that pays nothing) takes no lock: its leases run as concurrently as ever.

Lock order: project, then (in the lease) the chosen task; nothing that holds a task or an
assignment lock waits for a project row, so this cannot deadlock.

A label submitted late, on a lease past its time whose slot is still free, commits pay its
lease no longer holds (the lease's share went back when it expired). :func:`admit_late_label`
admits it the way a lease is admitted, under the same lock, and refuses it when the budget is
committed to other work meanwhile. So does :func:`admit_review_again` for a paid label that was
rejected (its share went back then) and is sent to review again, which would take its pay out
of the budget once more.

Bonuses and adjustments are spend (``quorum.domain.ledger``) but do not stop work: the budget
caps what labelling commits.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from quorum.db.models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    Project,
    ReviewStatus,
    Task,
    TaskStatus,
)
from quorum.db.types import utcnow
from quorum.domain.errors import Conflict
from quorum.domain.lease_rules import late
from quorum.domain.ledger import label_earned, project_spend

RECENT = timedelta(days=7)


def _limits(policy: dict[str, Any]) -> tuple[int, int] | None:
    """``(budget_cents, pay_per_task_cents)`` when the policy caps spend, else None."""
    budget, rate = policy.get("budget_cents"), int(policy.get("pay_per_task_cents") or 0)
    return None if budget is None or rate == 0 else (int(budget), rate)


def admit_lease(session: Session, project_id: int, user_id: int, now: datetime) -> bool:
    """Whether ``user_id`` may lease a task of the project now: always without a budget; with
    one, while the committed work plus one more task fits. Call it in the lease's transaction,
    before the lease; with a budget it locks the project's row until that transaction ends."""
    policy = session.scalar(select(Project.policy).where(Project.id == project_id))
    if policy is None or _limits(policy) is None:
        return True
    limits = _locked_limits(session, project_id)  # re-read under the lock
    if limits is None or _holds_live_lease(session, project_id, user_id, now):
        return True  # a held lease is handed back, and was counted when it was taken
    return _room_for_one(session, project_id, limits, now)


def admit_late_label(session: Session, assignment_id: int, user_id: int, now: datetime) -> bool:
    """Admit the caller's late label on ``assignment_id`` against its project's budget: True
    when it checked and the label fits (the project's row then stays locked until the
    transaction ends); False when there was nothing to admit (no budget, a lease still running,
    or not the caller's open assignment: the submit deals with those). Raises Conflict when
    the budget has no room left. Call it in the submit's transaction, before the submit."""
    query = (
        select(Assignment.status, Assignment.expires_at, Project.id)
        .join(Project, Project.id == Assignment.project_id)
        .where(Assignment.id == assignment_id, Assignment.user_id == user_id)
    )
    found = session.execute(query).first()
    if found is None:
        return False
    status, expires_at, project_id = found
    if status not in (AssignmentStatus.leased, AssignmentStatus.expired):
        return False  # submitted or skipped: a replay, or refused by the submit
    if not late(status, expires_at, now):
        return False
    limits = _locked_limits(session, project_id)
    if limits is None:
        return False
    if not _room_for_one(session, project_id, limits, now):
        raise Conflict(
            "the lease on this task expired and the project's budget went to other work "
            "meanwhile; ask for the next task"
        )
    return True


def admit_review_again(session: Session, annotation_id: int, now: datetime) -> None:
    """Admit sending ``annotation_id`` to review against its project's budget. A label that
    earned and was rejected gave its share back; review takes its pay out of the budget again,
    so it needs room for one more label, and Conflict is raised when there is none. Any other
    label, or a project without a budget, passes. Call it in the sending transaction, before
    the label changes: with a budget it locks the project's row, then the label's, until that
    transaction ends (the label's status is read under the locks, so no decision slips in)."""
    found = session.execute(
        select(Project.id, Project.policy)
        .join(Annotation, Annotation.project_id == Project.id)
        .where(Annotation.id == annotation_id)
    ).first()
    if found is None or _limits(found.policy) is None:
        return  # no such label (the caller's lookup says so), or no budget
    project_id = found.id
    limits = _locked_limits(session, project_id)  # re-read under the lock
    label = (
        select(Annotation.review_status, label_earned())
        .where(Annotation.id == annotation_id)
        .with_for_update(of=Annotation, key_share=True)
    )
    status, earned = session.execute(label).one()
    if limits is None or ReviewStatus(status) is not ReviewStatus.rejected or not earned:
        return
    if not _room_for_one(session, project_id, limits, now):
        raise Conflict(
            f"annotation {annotation_id} was rejected and its share of the budget went to other "
            "work since: reviewing it again would pay it past the project's budget"
        )


def _locked_limits(session: Session, project_id: int) -> tuple[int, int] | None:
    """The project's limits, read under the lock that admissions take in turn (FOR NO KEY
    UPDATE of its row, until the transaction ends)."""
    locked = select(Project.policy).where(Project.id == project_id)
    return _limits(session.scalar(locked.with_for_update(key_share=True)) or {})


def _room_for_one(
    session: Session, project_id: int, limits: tuple[int, int], now: datetime
) -> bool:
    """Whether the work the project committed, plus one more label, fits its budget."""
    budget, rate = limits
    labels, leases = committed_work(session, project_id, now)
    return (labels + leases + 1) * rate <= budget


def _holds_live_lease(session: Session, project_id: int, user_id: int, now: datetime) -> bool:
    query = select(Assignment.id).where(
        Assignment.project_id == project_id,
        Assignment.user_id == user_id,
        Assignment.status == AssignmentStatus.leased,
        Assignment.expires_at > now,
    )
    return session.scalar(query.limit(1)) is not None


def committed_work(session: Session, project_id: int, now: datetime) -> tuple[int, int]:
    """The project's labels that earned and were not rejected in review, and its live leases.

    NOTE: one statement, so one snapshot. Counted in two, a submit between them (a lease
    turning into a label) would be in neither count, and a lease past the budget admitted.
    """
    labels = select(func.count()).where(
        Annotation.project_id == project_id,
        Annotation.review_status != ReviewStatus.rejected,
        label_earned(),
    )
    leases = select(func.count()).where(
        Assignment.project_id == project_id,
        Assignment.status == AssignmentStatus.leased,
        Assignment.expires_at > now,
    )
    counted = session.execute(select(labels.scalar_subquery(), leases.scalar_subquery())).one()
    return int(counted[0] or 0), int(counted[1] or 0)


@dataclass(frozen=True)
class Spend:
    """A project's money: what it spent (the ledger), committed (the labels it pays for and
    live leases, at the rate), still needs to finish, and what one label costs."""

    budget_cents: int | None
    pay_per_task_cents: int
    spent_cents: int
    committed_cents: int
    labels: int
    live_leases: int
    labels_to_finish: int
    forecast_cents: int  # spent, plus the labels still to finish at the rate
    labels_last_week: int

    @property
    def cost_per_label_cents(self) -> float | None:
        return self.spent_cents / self.labels if self.labels else None

    @property
    def left_cents(self) -> int | None:
        return None if self.budget_cents is None else self.budget_cents - self.committed_cents

    @property
    def over_budget(self) -> bool:
        return self.budget_cents is not None and self.forecast_cents > self.budget_cents

    @property
    def days_to_finish(self) -> float | None:
        """At last week's pace; None when nothing was labelled last week."""
        if not self.labels_to_finish:
            return 0.0
        per_day = self.labels_last_week / RECENT.days
        return self.labels_to_finish / per_day if per_day else None


def spend(session: Session, project: Project, *, now: datetime | None = None) -> Spend:
    now = now or utcnow()
    rate = int(project.policy.get("pay_per_task_cents") or 0)
    labels, leases = committed_work(session, project.id, now)
    missing = func.sum(
        case((Task.overlap > Task.n_submitted, Task.overlap - Task.n_submitted), else_=0)
    )
    to_finish = session.scalar(
        select(func.coalesce(missing, 0)).where(
            Task.project_id == project.id, Task.status == TaskStatus.open
        )
    )
    recent = session.scalar(
        select(func.count()).where(
            Annotation.project_id == project.id, Annotation.submitted_at >= now - RECENT
        )
    )
    spent = project_spend(session, project.id)
    budget = project.policy.get("budget_cents")
    return Spend(
        budget_cents=None if budget is None else int(budget),
        pay_per_task_cents=rate,
        spent_cents=spent,
        committed_cents=(labels + leases) * rate,
        labels=labels,
        live_leases=leases,
        labels_to_finish=int(to_finish or 0),
        forecast_cents=spent + int(to_finish or 0) * rate,
        labels_last_week=int(recent or 0),
    )
