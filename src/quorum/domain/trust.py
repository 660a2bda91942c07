"""Trust: how often an annotator is right, as a Beta posterior over graded labels.

Every graded label (``quality_outcomes``: hidden gold, qualification tasks, reviewers'
decisions, and labels checked against a reviewer's correction) is one Bernoulli trial. With a
uniform prior Beta(1, 1), ``c`` right out of ``n`` gives Beta(1 + c, 1 + n - c): its mean is the
trust shown, its 5% and 95% quantiles the 90% credible interval, and its CDF at the project's
``accuracy_floor`` the probability that the annotator's accuracy is below the floor, which
auto-pause compares with 0.95 (``quorum.domain.pause``).

Trust is kept per annotator and *domain*: a project's domains are its ``required_domains``
(a project without any counts as ``general``), and an outcome in a project counts for each of
its domains. An annotator's own page shows their trust as of the start of the day (UTC), so the
figure cannot move right after one submission and tell which task was a check.
"""

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, time

from scipy.stats import beta
from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.orm import Session

from quorum.db.models import Annotation, Project, ProjectDomain, QualityOutcome
from quorum.db.types import utcnow

PRIOR_RIGHT = 1.0
PRIOR_WRONG = 1.0
CREDIBLE = 0.90
PAUSE_CERTAINTY = 0.95
GENERAL = "general"


@dataclass(frozen=True)
class Trust:
    """Beta(1 + correct, 1 + wrong): accuracy from ``correct`` right out of ``total`` graded."""

    correct: int
    total: int

    @property
    def a(self) -> float:
        return PRIOR_RIGHT + self.correct

    @property
    def b(self) -> float:
        return PRIOR_WRONG + self.total - self.correct

    @property
    def mean(self) -> float:
        return self.a / (self.a + self.b)

    @property
    def interval(self) -> tuple[float, float]:
        """The equal-tailed 90% credible interval, to six decimals (the quantile function's
        own error would otherwise show: 0.04999999999999999 for 0.05 with no checks).

        >>> Trust(0, 0).interval
        (0.05, 0.95)
        >>> [round(x, 3) for x in Trust(8, 10).interval]
        [0.53, 0.921]
        """
        tail = (1 - CREDIBLE) / 2
        low, high = beta.ppf([tail, 1 - tail], self.a, self.b)
        return round(float(low), 6), round(float(high), 6)

    def below(self, floor: float) -> float:
        """P(accuracy < floor) under the posterior.

        >>> round(Trust(0, 4).below(0.6), 3)  # four misses in a row
        0.99
        """
        return float(beta.cdf(floor, self.a, self.b))


def _tally(session: Session, query: Select[int, int, int]) -> dict[int, Trust]:
    """``{key: Trust}`` from rows of (key, right, total)."""
    return {key: Trust(int(right or 0), int(n)) for key, right, n in session.execute(query)}


def _right() -> ColumnElement[int]:
    return func.sum(case((QualityOutcome.correct, 1), else_=0))


def in_project(
    session: Session,
    project_id: int,
    user_ids: Collection[int] | None = None,
    *,
    since: dict[int, datetime] | None = None,
) -> dict[int, Trust]:
    """Trust of annotators from their outcomes in one project (all, or ``user_ids``);
    ``since`` keeps, per annotator, only outcomes recorded from that moment."""
    query = select(QualityOutcome.user_id, QualityOutcome.correct, QualityOutcome.created_at).where(
        QualityOutcome.project_id == project_id
    )
    if user_ids is not None:
        query = query.where(QualityOutcome.user_id.in_(list(user_ids)))
    right: dict[int, int] = defaultdict(int)
    total: dict[int, int] = defaultdict(int)
    for user_id, correct, created_at in session.execute(query):
        start = (since or {}).get(user_id)
        if start is not None and created_at < start:
            continue
        right[user_id] += bool(correct)
        total[user_id] += 1
    return {user_id: Trust(right[user_id], n) for user_id, n in total.items()}


@dataclass(frozen=True)
class DomainTrust:
    domain: str
    trust: Trust


def by_domain(
    session: Session, user_id: int, *, as_of: datetime | None = None
) -> list[DomainTrust]:
    """The annotator's trust per domain over all projects; with ``as_of``, only from labels
    submitted before it."""
    domain = func.coalesce(ProjectDomain.domain, GENERAL)
    query = (
        select(domain, _right(), func.count())
        .select_from(QualityOutcome)
        .join(Project, Project.id == QualityOutcome.project_id)
        .outerjoin(ProjectDomain, ProjectDomain.project_id == Project.id)
        .where(QualityOutcome.user_id == user_id)
        .group_by(domain)
        .order_by(domain)
    )
    if as_of is not None:
        query = query.join(Annotation, Annotation.id == QualityOutcome.annotation_id).where(
            Annotation.submitted_at < as_of
        )
    rows = session.execute(query)
    return [DomainTrust(name, Trust(int(right or 0), int(n))) for name, right, n in rows]


def own_view_cutoff(now: datetime | None = None) -> datetime:
    """The start of today (UTC): what an annotator's own page counts up to (module doc)."""
    now = now or utcnow()
    return datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)


def in_projects_as_of(
    session: Session, user_id: int, project_ids: Collection[int], as_of: datetime
) -> dict[int, Trust]:
    """The annotator's trust in each of these projects, from labels submitted before ``as_of``."""
    if not project_ids:
        return {}
    query = (
        select(QualityOutcome.project_id, _right(), func.count())
        .join(Annotation, Annotation.id == QualityOutcome.annotation_id)
        .where(
            QualityOutcome.user_id == user_id,
            QualityOutcome.project_id.in_(list(project_ids)),
            Annotation.submitted_at < as_of,
        )
        .group_by(QualityOutcome.project_id)
    )
    return _tally(session, query)


def by_domain_of(
    session: Session, user_ids: Collection[int], domains: Collection[str]
) -> dict[int, dict[str, Trust]]:
    """Trust of these annotators in these domains over all projects, in one query (the
    project's quality view); a domain without graded labels is Trust(0, 0), the prior."""
    found: dict[int, dict[str, Trust]] = {
        user_id: {name: Trust(0, 0) for name in domains} for user_id in user_ids
    }
    if not user_ids or not domains:
        return found
    domain = func.coalesce(ProjectDomain.domain, GENERAL)
    query = (
        select(QualityOutcome.user_id, domain, _right(), func.count())
        .select_from(QualityOutcome)
        .outerjoin(ProjectDomain, ProjectDomain.project_id == QualityOutcome.project_id)
        .where(QualityOutcome.user_id.in_(list(user_ids)), domain.in_(list(domains)))
        .group_by(QualityOutcome.user_id, domain)
    )
    for user_id, name, right, n in session.execute(query):
        found[user_id][name] = Trust(int(right or 0), int(n))
    return found


def domains_of_project(session: Session, project_id: int) -> list[str]:
    """The domains a project's outcomes count for: its required domains, else ``general``."""
    query = select(ProjectDomain.domain).where(ProjectDomain.project_id == project_id)
    return sorted(session.scalars(query)) or [GENERAL]
