"""The requester's dashboard: progress, throughput, annotators, agreement, confusion, exports.

Charts are Plotly figures described in JSON on the page and drawn by ``charts.js`` with the
plotly.js that ships in the ``plotly`` Python package.
"""

from datetime import datetime, timedelta
from itertools import accumulate
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from plotly import __version__ as plotly_version

from quorum.domain import dashboard, policies, projects
from quorum.domain.dashboard import AnnotatorLabels, Overview
from quorum.domain.dashboard_figures import Confusion, QuestionAgreement
from quorum.web import export, quality
from quorum.web.deps import CurrentUser, PageId, SessionDep, render

router = APIRouter()


STEPS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
Figure = dict[str, Any]


def charts(overview: Overview) -> dict[str, Figure]:
    """Plotly figure specs (data and layout) by chart id; the page holds them as JSON."""
    specs: dict[str, Figure] = {}
    if overview.throughput:
        specs["throughput"] = _throughput(overview.throughput, overview.throughput_unit)
    if overview.annotators:
        specs["annotators"] = _annotators(overview.annotators)
    measured = [a for a in overview.agreement if a.value is not None]
    if measured:
        specs["agreement"] = _agreement(measured)
    for confusion in overview.confusions:
        if not confusion.empty:
            specs[f"confusion-{confusion.question}"] = _confusion(confusion)
    return specs


def _throughput(buckets: list[tuple[datetime, int]], unit: str) -> Figure:
    # An empty bucket on each side, so a single busy hour is a bar, not the whole axis.
    step = STEPS[unit]
    padded = [(buckets[0][0] - step, 0), *buckets, (buckets[-1][0] + step, 0)]
    x = [moment.isoformat() for moment, _ in padded]
    y = [count for _, count in padded]
    cumulative = list(accumulate(y))
    period = int(step.total_seconds() * 1000)
    # Bars span their period (an hour, a day, a week) instead of centering on its start.
    span = {"xperiod": period, "xperiodalignment": "middle"}
    return {
        "data": [
            {"type": "bar", "x": x, "y": y, "name": f"labels per {unit}", **span},
            {
                "type": "scatter",
                "x": x,
                "y": cumulative,
                "name": "labels so far",
                "yaxis": "y2",
                **span,
            },
        ],
        "layout": {
            "xaxis": {"type": "date"},
            "yaxis": {"title": {"text": f"per {unit}"}, **_count_axis(max(y))},
            "yaxis2": {
                "overlaying": "y",
                "side": "right",
                "title": {"text": "total"},
                **_count_axis(cumulative[-1]),
                "showgrid": False,
            },
            "legend": {"orientation": "h", "y": -0.2},
        },
    }


def _count_axis(top: int) -> dict[str, Any]:
    """An axis of whole counts: with small counts Plotly would place ticks at fractions, which
    whole-number labels then repeat (0, 0, 1, 1)."""
    axis: dict[str, Any] = {"rangemode": "tozero", "tickformat": ",d"}
    if top < 6:
        axis["dtick"] = 1
    return axis


def _annotators(people: list[AnnotatorLabels]) -> Figure:
    names = [a.annotator for a in people]
    return {
        "data": [
            {
                "type": "bar",
                "x": names,
                "y": [a.labels - a.rejected for a in people],
                "name": "kept",
            },
            {"type": "bar", "x": names, "y": [a.rejected for a in people], "name": "rejected"},
        ],
        "layout": {"barmode": "stack", "legend": {"orientation": "h", "y": -0.25}},
    }


def _agreement(measured: list[QuestionAgreement]) -> Figure:
    values = [a.value or 0.0 for a in measured]
    above = [
        (a.high if a.high is not None else v) - v for a, v in zip(measured, values, strict=True)
    ]
    below = [v - (a.low if a.low is not None else v) for a, v in zip(measured, values, strict=True)]
    return {
        "data": [
            {
                "type": "bar",
                "x": [a.question for a in measured],
                "y": values,
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": above,
                    "arrayminus": below,
                },
            }
        ],
        "layout": {"yaxis": {"range": [min(-0.1, *values), 1], "title": {"text": "α"}}},
    }


def _confusion(confusion: Confusion) -> Figure:
    against = "gold label" if confusion.gold else "another annotator's label"
    return {
        "data": [
            {
                "type": "heatmap",
                "z": confusion.gold or confusion.pairs,
                "x": confusion.labels,
                "y": confusion.labels,
                "colorscale": [[0, "#f8fafc"], [1, "#1d4ed8"]],
                "hovertemplate": "%{y} → %{x}: %{z}<extra></extra>",
            }
        ],
        "layout": {
            "xaxis": {
                "title": {"text": "annotator's label"},
                "type": "category",
                "automargin": True,
            },
            "yaxis": {
                "title": {"text": against},
                "type": "category",
                "autorange": "reversed",
                "automargin": True,
            },
        },
    }


@router.get("/projects/{project_id:int}", name="web_project")
def project_page(project_id: PageId, session: SessionDep, user: CurrentUser) -> Response:
    """A project's own address: its dashboard for those who may see it, else its labeling page."""
    seen = projects.access(session, user, project_id)
    page = "dashboard" if policies.can_view_dashboard(seen.role)(user) else "label"
    return RedirectResponse(f"/projects/{project_id}/{page}", status_code=303)


@router.get("/projects/{project_id}/dashboard", name="web_dashboard")
def dashboard_page(
    project_id: PageId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    seen = projects.access(session, user, project_id)
    policies.authorize(
        user, policies.can_view_dashboard(seen.role), "only owners and reviewers see the dashboard"
    )
    overview = dashboard.project_overview(session, seen.project)
    figures = charts(overview)
    shown = quality.panel(session, seen.project, seen.role, user)
    trust_chart = quality.interval_chart(shown) if shown else None
    if trust_chart:
        figures["trust"] = trust_chart
    context = {
        "project": seen.project,
        "o": overview,
        "quality": shown,
        "charts": figures,
        "plotly_version": plotly_version,
        "can_export": policies.can_export(seen.role)(user),
        "can_manage": policies.can_manage_project(seen.role)(user),
        "export_formats": export.formats_for(seen.project),
        "export_methods": export.AGGREGATION_METHODS,
    }
    return render(request, "dashboard.html", context)
