"""The quality loop on pages: the dashboard's quality panel and the owner's decisions.

The panel shows each annotator's trust (the Beta posterior's mean and 90% credible interval,
``quorum.domain.trust``) in the project and in each of its domains, their qualification results,
and who is paused: why, when and by whom. Owners un-pause annotators and let them take the
qualification again from it (POST forms). Everything is read in a fixed number of queries.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from quorum.db.models import Project, ProjectWorker, QualificationAttempt, Role, User
from quorum.db.types import utcnow
from quorum.domain import pause, policies, projects, qualification
from quorum.domain.errors import Conflict
from quorum.domain.projects import policy_of
from quorum.domain.quality_report import AnnotatorQuality, ProjectQuality, project_quality
from quorum.domain.trust import CREDIBLE, Trust
from quorum.web.deps import CurrentUser, PageId, SessionDep, flash

router = APIRouter()
# Labels older than this still waiting for the loop (which runs every few seconds) mean it is
# not running: the panel says so.
LOOP_BEHIND = timedelta(minutes=2)
Figure = dict[str, Any]
AUTO = "auto: "
BY_OWNER = "by an owner: "


@dataclass(frozen=True)
class Paused:
    """Why an annotator is paused, as the owners who can un-pause them read it."""

    reason: str
    automatic: bool
    at: datetime | None
    by: str  # a person's name, or "the quality loop"


@dataclass(frozen=True)
class Row:
    a: AnnotatorQuality
    paused: Paused | None
    attempts: list[QualificationAttempt]  # oldest first

    @property
    def latest(self) -> QualificationAttempt | None:
        return self.attempts[-1] if self.attempts else None


@dataclass(frozen=True)
class Panel:
    q: ProjectQuality
    rows: list[Row]
    gold_rate: float
    pass_rate: float | None
    see_reasons: bool
    manage: bool

    @property
    def loop_behind(self) -> bool:
        """Labels have waited for the quality loop for longer than it ever takes to run."""
        since = self.q.waiting_since
        return since is not None and utcnow() - since > LOOP_BEHIND

    @property
    def paused(self) -> list[Row]:
        return [row for row in self.rows if row.a.paused]

    @property
    def failed(self) -> list[Row]:
        return [row for row in self.rows if row.a.qualification == "failed"]


def panel(session: Session, project: Project, role: Role | None, user: User) -> Panel | None:
    """The quality panel of the dashboard, or None for those who may not see it."""
    if not policies.can_see_quality(role)(user):
        return None
    report = project_quality(session, project)
    see_reasons = policies.can_see_pause_reason(role)(user)
    pausers = _pausers(session, project.id) if see_reasons else {}
    attempts = _attempts(session, project.id)
    rows = [
        Row(
            a,
            _paused(a, pausers) if see_reasons and a.paused else None,
            attempts.get(a.user_id, []),
        )
        for a in report.annotators
        if a.labels or a.trust.total or a.paused or a.user_id in attempts
    ]
    policy = policy_of(project)
    return Panel(
        q=report,
        rows=rows,
        gold_rate=policy.gold_rate,
        pass_rate=policy.qualification.pass_rate if policy.qualification else None,
        see_reasons=see_reasons,
        manage=policies.can_manage_standing(role)(user),
    )


def _pausers(session: Session, project_id: int) -> dict[int, str]:
    """Who paused each paused annotator of the project (absent: the quality loop)."""
    query = (
        select(ProjectWorker.user_id, User.name, User.email)
        .join(User, User.id == ProjectWorker.paused_by)
        .where(ProjectWorker.project_id == project_id, ProjectWorker.paused_at.is_not(None))
    )
    return {user_id: name or email for user_id, name, email in session.execute(query)}


def _attempts(session: Session, project_id: int) -> dict[int, list[QualificationAttempt]]:
    query = (
        select(QualificationAttempt)
        .where(QualificationAttempt.project_id == project_id)
        .order_by(QualificationAttempt.id)
    )
    found: dict[int, list[QualificationAttempt]] = {}
    for attempt in session.scalars(query):
        found.setdefault(attempt.user_id, []).append(attempt)
    return found


def _paused(a: AnnotatorQuality, pausers: dict[int, str]) -> Paused:
    reason = a.pause_reason
    automatic = reason.startswith(AUTO)
    for prefix in (AUTO, BY_OWNER):
        reason = reason.removeprefix(prefix)
    return Paused(reason, automatic, a.paused_at, pausers.get(a.user_id, "the quality loop"))


def interval_chart(shown: Panel) -> Figure | None:
    """Each annotator's trust with its 90% credible interval: in the project, and in each of
    its domains over every project, side by side; the accuracy floor as a dotted line."""
    graded = [row.a for row in shown.rows if row.a.trust.total]
    if not graded:
        return None
    series = [("in this project", [a.trust for a in graded])]
    series += [
        (f"{domain} (all projects)", [a.domains.get(domain, Trust(0, 0)) for a in graded])
        for domain in shown.q.domains
    ]
    # NOTE: annotators sit at whole numbers on the y axis, each series a little apart, so the
    # intervals of one annotator do not hide each other.
    step = 0.6 / len(series)
    offsets = [step * (k - (len(series) - 1) / 2) for k in range(len(series))]
    names = [a.annotator for a in graded]
    return {
        "data": [
            _interval_trace(name, names, trusts, offset)
            for (name, trusts), offset in zip(series, offsets, strict=True)
        ],
        "layout": {
            "height": 140 + 50 * len(names),
            "xaxis": {"range": [0, 1], "tickformat": ".0%", "title": {"text": "accuracy"}},
            "yaxis": {
                "tickvals": list(range(len(names))),
                "ticktext": names,
                "range": [len(names) - 0.5, -0.5],
                "automargin": True,
                "zeroline": False,
            },
            "shapes": [
                {
                    "type": "line",
                    "x0": shown.q.accuracy_floor,
                    "x1": shown.q.accuracy_floor,
                    "yref": "paper",
                    "y0": 0,
                    "y1": 1,
                    "line": {"dash": "dot", "color": "#b42318"},
                }
            ],
            "legend": {"orientation": "h", "y": -0.3},
        },
    }


def _interval_trace(name: str, names: list[str], trusts: list[Trust], offset: float) -> Figure:
    means = [t.mean for t in trusts]
    bounds = [t.interval for t in trusts]
    return {
        "type": "scatter",
        "mode": "markers",
        "name": name,
        "x": means,
        "y": [i + offset for i in range(len(names))],
        "error_x": {
            "type": "data",
            "symmetric": False,
            "array": [high - mean for (_, high), mean in zip(bounds, means, strict=True)],
            "arrayminus": [mean - low for (low, _), mean in zip(bounds, means, strict=True)],
        },
        "customdata": [
            [who, t.correct, t.total, low, high]
            for who, t, (low, high) in zip(names, trusts, bounds, strict=True)
        ],
        "hovertemplate": (
            "%{customdata[0]}: %{x:.0%} [%{customdata[3]:.0%}, %{customdata[4]:.0%}]"
            f" ({CREDIBLE:.0%} interval), "
            "%{customdata[1]} of %{customdata[2]} checks right<extra>%{fullData.name}</extra>"
        ),
    }


def _standing_change(
    project_id: int, user_id: int, session: Session, user: User
) -> tuple[Project, User]:
    seen = projects.access(session, user, project_id)
    policies.authorize(
        user, policies.can_manage_standing(seen.role), "only the project's owners decide this"
    )
    return seen.project, pause.get_member_worker(session, seen.project, user_id)


def _back(project_id: int) -> RedirectResponse:
    return RedirectResponse(f"/projects/{project_id}/dashboard#quality", status_code=303)


@router.post("/projects/{project_id}/annotators/{user_id}/unpause", name="web_unpause")
def unpause(
    project_id: PageId, user_id: PageId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    """Let a paused annotator label the project again; their labels count again."""
    project, person = _standing_change(project_id, user_id, session, user)
    try:
        pause.unpause(session, project.id, person.id, by=user)
    except Conflict as error:
        session.rollback()
        flash(request, error.message, "error")
    else:
        flash(request, f"{person.pseudonym} may label this project again.", "ok")
    return _back(project_id)


@router.post(
    "/projects/{project_id}/annotators/{user_id}/reset-qualification",
    name="web_reset_qualification",
)
def reset_qualification(
    project_id: PageId, user_id: PageId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    """Let an annotator who failed the qualification take it again (the attempt stays)."""
    project, person = _standing_change(project_id, user_id, session, user)
    try:
        qualification.reset(session, project, person.id, by=user)
    except Conflict as error:
        session.rollback()
        flash(request, error.message, "error")
    else:
        flash(request, f"{person.pseudonym} may take the qualification again.", "ok")
    return _back(project_id)
