"""What owners see of a project's quality loop: each annotator's trust, checks and standing.

One call gathers it for the API, the dashboard and the CLI (``project_quality``); everything
is read in a fixed number of queries.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quorum.db.models import (
    Annotation,
    Membership,
    Project,
    ProjectWorker,
    QualityState,
    Task,
    TaskStatus,
    User,
)
from quorum.domain import qualification
from quorum.domain.projects import policy_of
from quorum.domain.trust import (
    PAUSE_CERTAINTY,
    DomainTrust,
    Trust,
    by_domain,
    by_domain_of,
    domains_of_project,
    in_project,
    in_projects_as_of,
    own_view_cutoff,
)


@dataclass(frozen=True)
class AnnotatorQuality:
    user_id: int
    annotator: str  # pseudonym
    email: str
    tier: int
    labels: int
    trust: Trust
    below_floor: float  # P(accuracy < the project's floor)
    paused: bool
    pause_reason: str
    paused_at: datetime | None
    qualification: str  # not required, qualifying, passed, failed
    # Trust in each of the project's domains, over every project (``trust.by_domain_of``).
    domains: dict[str, Trust] = field(default_factory=dict)

    @property
    def excluded(self) -> bool:
        """Their labels are left out of aggregation (kept, and marked)."""
        return self.paused


@dataclass(frozen=True)
class ProjectQuality:
    accuracy_floor: float
    pause_certainty: float
    annotators: list[AnnotatorQuality]
    escalated_waiting: int  # open tasks whose next slot is kept for a higher tier
    gold_tasks: int
    qualification_tasks: int
    fitted_at: datetime | None
    fitted_labels: int
    # Labels the loop has not processed yet, and when the oldest came: a number that only grows
    # means the loop is not running (on PostgreSQL it runs in ``quorum worker``).
    waiting_labels: int = 0
    waiting_since: datetime | None = None
    domains: list[str] = field(default_factory=list)  # the project's ("general" if none)


def project_quality(
    session: Session, project: Project, *, with_reasons: bool = True
) -> ProjectQuality:
    """Each annotator's trust and standing in the project. Without ``with_reasons`` (a viewer
    who may not read them, ``policies.can_see_pause_reason``) a pause shows as paused only:
    no reason and no time."""
    policy = policy_of(project)
    members = select(Membership.user_id).where(Membership.project_id == project.id)
    labellers = select(Annotation.user_id).where(Annotation.project_id == project.id)
    people = (
        session.execute(
            select(User)
            .where(User.id.in_(members.union(labellers).scalar_subquery()))
            .order_by(User.id)
        )
        .scalars()
        .all()
    )
    counts = dict(
        session.execute(
            select(Annotation.user_id, func.count())
            .where(Annotation.project_id == project.id)
            .group_by(Annotation.user_id)
        ).all()
    )
    standing = {
        w.user_id: w
        for w in session.scalars(
            select(ProjectWorker).where(ProjectWorker.project_id == project.id)
        )
    }
    trusts = in_project(session, project.id)
    domains = domains_of_project(session, project.id)
    by_domain = by_domain_of(session, [person.id for person in people], domains)
    required = policy.qualification is not None
    rows = []
    for person in people:
        worker = standing.get(person.id)
        told = worker if worker and worker.paused_at and with_reasons else None  # why, when
        trust = trusts.get(person.id, Trust(0, 0))
        state = "not required"
        if required:
            state = worker.qualification if worker and worker.qualification else "qualifying"
        rows.append(
            AnnotatorQuality(
                user_id=person.id,
                annotator=person.pseudonym,
                email=person.email,
                tier=person.tier,
                labels=int(counts.get(person.id, 0)),
                trust=trust,
                below_floor=trust.below(policy.accuracy_floor),
                paused=bool(worker and worker.paused_at),
                pause_reason=told.pause_reason if told else "",
                paused_at=told.paused_at if told else None,
                qualification=state,
                domains=by_domain[person.id],
            )
        )
    escalated = session.scalar(
        select(func.count()).where(
            Task.project_id == project.id,
            Task.status == TaskStatus.open,
            Task.min_tier > policy.min_tier,
        )
    )
    gold = session.scalar(
        select(func.count()).where(Task.project_id == project.id, Task.gold.is_not(None))
    )
    loop = session.get(QualityState, project.id)
    waiting, since = session.execute(
        select(func.count(), func.min(Annotation.submitted_at)).where(
            Annotation.project_id == project.id, Annotation.loop_tick.is_(None)
        )
    ).one()
    return ProjectQuality(
        accuracy_floor=policy.accuracy_floor,
        pause_certainty=PAUSE_CERTAINTY,
        annotators=rows,
        escalated_waiting=int(escalated or 0),
        gold_tasks=int(gold or 0),
        qualification_tasks=len(qualification.task_ids(session, project)),
        fitted_at=loop.fitted_at if loop else None,
        fitted_labels=loop.fitted_labels if loop else 0,
        waiting_labels=int(waiting or 0),
        waiting_since=since,
        domains=domains,
    )


def annotator_json(a: AnnotatorQuality) -> dict[str, Any]:
    low, high = a.trust.interval
    return {
        "user_id": a.user_id,
        "annotator": a.annotator,
        "tier": a.tier,
        "labels": a.labels,
        "checks": a.trust.total,
        "checks_right": a.trust.correct,
        "trust": {"mean": a.trust.mean, "low": low, "high": high, "credible": 0.9},
        "p_below_floor": a.below_floor,
        "paused": a.paused,
        "pause_reason": a.pause_reason,
        "paused_at": a.paused_at.isoformat() if a.paused_at else None,
        "labels_excluded": a.excluded,
        "qualification": a.qualification,
        "domains": {
            name: {"mean": t.mean, "low": t.interval[0], "high": t.interval[1], "checks": t.total}
            for name, t in a.domains.items()
        },
    }


def as_json(q: ProjectQuality) -> dict[str, Any]:
    return {
        "accuracy_floor": q.accuracy_floor,
        "pause_certainty": q.pause_certainty,
        "escalated_waiting": q.escalated_waiting,
        "gold_tasks": q.gold_tasks,
        "qualification_tasks": q.qualification_tasks,
        "fitted_at": q.fitted_at.isoformat() if q.fitted_at else None,
        "fitted_labels": q.fitted_labels,
        "domains": q.domains,
        "annotators": [annotator_json(a) for a in q.annotators],
    }


@dataclass(frozen=True)
class Standing:
    qualification: str  # not required, qualifying, passed, failed
    paused: bool
    pause_reason: str


def standing(session: Session, project: Project, user_id: int) -> Standing:
    """One annotator's standing in the project (after an owner's decision)."""
    worker = session.get(ProjectWorker, (project.id, user_id), populate_existing=True)
    paused = worker is not None and worker.paused_at is not None
    state = qualification.status(session, project, user_id).state
    return Standing(state, paused, worker.pause_reason if worker and paused else "")


@dataclass(frozen=True)
class OwnProject:
    project_id: int
    name: str
    trust: Trust
    paused: bool
    qualification: str


@dataclass(frozen=True)
class OwnView:
    """What an annotator sees of their own trust (``trust`` module doc: as of today's start)."""

    as_of: datetime
    domains: list[DomainTrust]
    projects: list[OwnProject]


def own_view(session: Session, user: User, *, now: datetime | None = None) -> OwnView:
    """The annotator's trust per domain and per project they are a member of."""
    as_of = own_view_cutoff(now)
    mine = session.scalars(
        select(Project)
        .join(Membership, Membership.project_id == Project.id)
        .where(Membership.user_id == user.id)
        .order_by(Project.id)
    ).all()
    trusts = in_projects_as_of(session, user.id, [p.id for p in mine], as_of)
    workers = {
        w.project_id: w
        for w in session.scalars(select(ProjectWorker).where(ProjectWorker.user_id == user.id))
    }
    rows = []
    for project in mine:
        worker = workers.get(project.id)
        state = "not required"
        if policy_of(project).qualification is not None:
            state = worker.qualification if worker and worker.qualification else "qualifying"
        paused = worker is not None and worker.paused_at is not None
        trust = trusts.get(project.id, Trust(0, 0))
        rows.append(OwnProject(project.id, project.name, trust, paused, state))
    return OwnView(as_of, by_domain(session, user.id, as_of=as_of), rows)
