"""The quality loop of a project, run after labels arrive, never on the request path.

Two steps, run as jobs (``quorum.domain.quality_jobs``: procrastinate on PostgreSQL, a thread in
the server on SQLite) and directly by ``quorum simulate``:

:func:`tick`, for the labels no tick has processed yet, in id order (each is marked with the
tick's number, ``Annotation.loop_tick``, in the same transaction):

1. labels on gold tasks are graded (``quorum.domain.gold``): trust evidence;
2. spam signals (``quorum.domain.spam``) flag labels, each with its reason, and ``review_rate``
   of the other labels is sampled, by a hash of the label's id; both go to the review queue.
   Labels on hidden gold are sampled like any other: a label's pay waits while it is reviewed,
   and a check that never waited would stand out in the annotator's statement;
3. each task that got labels is decided again with the stored worker model
   (``quorum.domain.adaptive_loop``): one more slot if its answer is still unsure, escalated
   after two extra labels;
4. then, in a second transaction, annotators with new outcomes are checked for auto-pause
   (``quorum.domain.pause``), which frees their leases (assignment then task locks: done apart
   from step 3, whose task locks come in another order);
5. in a third, the tasks of annotators just paused are decided again: their labels no longer
   count, so a task may get a slot to replace them.

:func:`refit` re-aggregates the whole project (Dawid-Skene per categorical question), stores the
worker model, decides every task again, flags annotators who disagree with the consensus, and
re-checks auto-pause for everyone graded (then decides the tasks of those it paused again).
:func:`refit_due` says when labels grew enough since the last fit to be worth it (10%, at least
20 labels).

Which labels are new is never read from ids: a label's id is taken before its submit commits,
so on PostgreSQL a lower id can commit after a higher one the loop already processed. A tick
takes the labels it has not marked; "since the last fit" means processed by a tick after the
last one the fit saw (``QualityState.fitted_tick``). So each label is processed by exactly one
tick and considered for the consensus flags at exactly one re-aggregation.

Every step can run again without harm: outcomes are unique per label, a pending review is not
queued twice, a slot is added only while the task's overlap is what the decision saw.
"""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from quorum.db.models import (
    Annotation,
    Project,
    QualityOutcome,
    QualityState,
    ReviewSource,
    ReviewStatus,
    Task,
)
from quorum.db.types import utcnow
from quorum.domain import adaptive_loop, gold, pause, qualification, spam
from quorum.domain.pause import usable_label
from quorum.domain.projects import policy_of, schema_of
from quorum.domain.reviews import ToReview, queue_for_review

TICK_BATCH = 2000
REFIT_GROWTH = 0.10
REFIT_MIN_NEW = 20
DECIDE_BATCH = 5000
CONSENSUS_FLAGS = 3  # an annotator's latest labels sent to review when they disagree


@dataclass
class TickReport:
    labels: int = 0
    graded: int = 0
    flagged: int = 0
    sampled: int = 0
    raised: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)
    paused: list[int] = field(default_factory=list)


def state_of(session: Session, project_id: int, *, lock: bool = False) -> QualityState:
    """The project's loop state, created at its start (no tick yet, no model); ``lock`` reads
    it again, locked."""
    state = session.get(
        QualityState, project_id, with_for_update=lock or None, populate_existing=lock
    )
    if state is None:
        state = QualityState(
            project_id=project_id, ticks=0, fitted_tick=0, fitted_labels=0, updated_at=utcnow()
        )
        session.add(state)
        session.flush()
    return state


def sampled(project_id: int, annotation_id: int, rate: float) -> bool:
    """Whether ``review_rate`` picks this label: a hash, so every process agrees and a rerun
    picks the same labels."""
    if rate <= 0:
        return False
    digest = hashlib.blake2b(f"{project_id}:{annotation_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < rate


def tick(session: Session, project: Project, *, now: datetime | None = None) -> TickReport:
    """Process the labels no tick has processed yet (module doc); commits."""
    now = now or utcnow()
    state = state_of(session, project.id, lock=True)
    rows = session.execute(
        select(
            Annotation.id,
            Annotation.task_id,
            Annotation.user_id,
            Annotation.answers,
            Annotation.duration_ms,
            Task.gold.is_not(None),
        )
        .join(Task, Task.id == Annotation.task_id)
        .where(Annotation.project_id == project.id, Annotation.loop_tick.is_(None))
        .order_by(Annotation.id)
        .limit(TICK_BATCH)
    ).all()
    report = TickReport(labels=len(rows))
    if not rows:
        session.commit()
        return report
    state.ticks += 1
    _mark(session, [r[0] for r in rows], state.ticks)
    policy = policy_of(project)
    new = [spam.NewLabel(r[0], r[1], r[2], r[3], r[4]) for r in rows]
    on_gold = {r[0] for r in rows if r[5]}
    last_qualification = qualification.last_task_id(session, project)
    graded = gold.grade_gold(
        session, project, sorted(on_gold), qualification_last=last_qualification, now=now
    )
    report.graded = len(graded)
    reasons = spam.flag(session, project, schema_of(project), new)
    items = [ToReview(aid, ReviewSource.flagged, "; ".join(why)) for aid, why in reasons.items()]
    picked = [
        ToReview(label.annotation_id, ReviewSource.sampled, f"review_rate {policy.review_rate}")
        for label in new
        if label.annotation_id not in reasons
        and sampled(project.id, label.annotation_id, policy.review_rate)
    ]
    report.flagged = queue_for_review(session, items, now=now)
    report.sampled = queue_for_review(session, picked, now=now)
    models = adaptive_loop.load(state.model)
    touched = sorted({label.task_id for label in new if label.annotation_id not in on_gold})
    decision = adaptive_loop.decide(session, project, touched, models)
    report.raised, report.escalated = decision.raised, decision.escalated
    state.updated_at = now
    session.commit()
    report.paused = pause.check(session, project, {item.user_id for item in graded}, now=now)
    session.commit()
    _replace_paused(session, project, report.paused, models, report)
    return report


def _mark(session: Session, annotation_ids: list[int], tick_number: int) -> None:
    """Mark these labels processed by this tick (ticks of a project hold its state's lock).

    NOTE: done first, so the tick locks its labels in id order before any pay or review row,
    as a reviewer's decision does (label, then pay)."""
    session.execute(
        update(Annotation).where(Annotation.id.in_(annotation_ids)).values(loop_tick=tick_number)
    )


def usable_labels(session: Session, project_id: int, *, since_tick: int = 0) -> int:
    """The project's usable labels that ticks after ``since_tick`` processed."""
    query = select(func.count()).where(
        Annotation.project_id == project_id,
        Annotation.loop_tick > since_tick,
        Annotation.review_status != ReviewStatus.rejected,
        usable_label(),
    )
    return int(session.scalar(query) or 0)


def refit_due(session: Session, project_id: int) -> bool:
    """Whether labels grew enough since the last fit (module doc)."""
    state = session.get(QualityState, project_id)
    fitted = state.fitted_labels if state is not None and state.model else 0
    grown = usable_labels(session, project_id, since_tick=state.fitted_tick if state else 0)
    return grown >= max(REFIT_MIN_NEW, REFIT_GROWTH * fitted)


@dataclass
class RefitReport:
    labels: int = 0
    raised: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)
    flagged: int = 0
    paused: list[int] = field(default_factory=list)
    superseded: bool = False  # a re-aggregation that saw more labels stored its model first


def refit(session: Session, project: Project, *, now: datetime | None = None) -> RefitReport:
    """Re-aggregate the whole project and decide every task again (module doc); commits."""
    now = now or utcnow()
    covered = state_of(session, project.id).ticks  # the fit reads every label of these ticks
    fitted = adaptive_loop.fit(session, project)
    state = state_of(session, project.id, lock=True)
    # NOTE: read under the lock: a re-aggregation that overlapped this one may have moved it,
    # and each tick's labels must be new to exactly one re-aggregation.
    if covered < state.fitted_tick:
        # Its model was fitted on fewer labels than the one stored meanwhile, which also
        # decided the tasks and flagged the labels this one would have.
        session.rollback()
        return RefitReport(labels=fitted.labels, superseded=True)
    since, state.fitted_tick = state.fitted_tick, max(state.fitted_tick, covered)
    adaptive_loop.store(session, project.id, fitted, now=now)
    report = RefitReport(labels=fitted.labels)
    for batch in _complete_work(session, project.id):
        decision = adaptive_loop.decide(session, project, batch, fitted.models)
        report.raised += decision.raised
        report.escalated += decision.escalated
    report.flagged = _flag_disagreement(session, project, fitted, (since, covered), now)
    session.commit()
    graded = session.scalars(
        select(QualityOutcome.user_id).where(QualityOutcome.project_id == project.id).distinct()
    ).all()
    report.paused = pause.check(session, project, set(graded), now=now)
    session.commit()
    _replace_paused(session, project, report.paused, fitted.models, report)
    return report


def _replace_paused(
    session: Session,
    project: Project,
    paused: list[int],
    models: adaptive_loop.Models,
    report: TickReport | RefitReport,
) -> None:
    """Decide again the tasks of annotators just paused: their labels no longer count, so a
    task may get a slot to replace them (``adaptive_loop.decide``); commits."""
    if not paused:
        return
    ids = session.scalars(
        select(Annotation.task_id)
        .where(Annotation.project_id == project.id, Annotation.user_id.in_(paused))
        .distinct()
        .order_by(Annotation.task_id)
    ).all()
    for start in range(0, len(ids), DECIDE_BATCH):
        decision = adaptive_loop.decide(session, project, ids[start : start + DECIDE_BATCH], models)
        report.raised += decision.raised
        report.escalated += decision.escalated
    session.commit()


def _complete_work(session: Session, project_id: int) -> list[list[int]]:
    """Ids of the project's work tasks whose slots are all filled, in batches."""
    ids = session.scalars(
        select(Task.id)
        .where(
            Task.project_id == project_id,
            Task.gold.is_(None),
            Task.n_submitted >= Task.overlap,
        )
        .order_by(Task.id)
    ).all()
    return [list(ids[i : i + DECIDE_BATCH]) for i in range(0, len(ids), DECIDE_BATCH)]


def _flag_disagreement(
    session: Session,
    project: Project,
    fitted: adaptive_loop.Fit,
    ticks: tuple[int, int],
    now: datetime,
) -> int:
    """Send to review the latest labels, of those new since the previous fit (processed by the
    ``ticks`` after the first up to the second), of annotators who disagree with the consensus
    (``spam.disagreement``)."""
    since, covered = ticks
    if not fitted.consensus or covered <= since:
        return 0
    rows = session.execute(
        select(
            Annotation.id,
            Annotation.user_id,
            Annotation.task_id,
            Annotation.answers,
            Annotation.loop_tick,
        )
        .where(
            Annotation.project_id == project.id,
            Annotation.review_status != ReviewStatus.rejected,
            usable_label(),
        )
        .order_by(Annotation.id)
    ).all()
    users = np.array([r[1] for r in rows], np.int64)
    tasks = np.array([r[2] for r in rows], np.int64)
    items: list[ToReview] = []
    new = [r[4] is not None and since < r[4] <= covered for r in rows]
    for name, consensus in fitted.consensus.items():
        keys = [adaptive_loop.answer_key(r[3].get(name)) for r in rows]
        flagged = spam.disagreement(spam.agreement_counts(users, tasks, keys, consensus))
        for user_id, why in flagged.items():
            latest = [
                aid
                for (aid, who, task_id, _, _), key, is_new in zip(rows, keys, new, strict=True)
                if who == user_id and is_new and key is not None and key != consensus.get(task_id)
            ]
            items += [ToReview(aid, ReviewSource.flagged, why) for aid in latest[-CONSENSUS_FLAGS:]]
    return queue_for_review(session, items, now=now)
