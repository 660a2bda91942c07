"""The requester's dashboard: progress, throughput, annotators, agreement, confusion, exports.

Charts are Plotly figures described in JSON on the page and drawn by ``charts.js`` with the
plotly.js that ships in the ``plotly`` Python package.
"""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from plotly import __version__ as plotly_version

from quorum.domain import dashboard, policies, projects
from quorum.domain.dashboard import Overview
from quorum.web.deps import CurrentUser, PageId, SessionDep, render

router = APIRouter()
EXPORT_FORMATS = ("jsonl", "csv", "parquet", "hf", "dpo", "sft")


def charts(overview: Overview) -> dict[str, Any]:
    """Plotly figure specs (data and layout) by chart id; the page holds them as JSON."""
    specs: dict[str, Any] = {}
    if overview.throughput:
        x = [moment.isoformat() for moment, _ in overview.throughput]
        y = [count for _, count in overview.throughput]
        total, cumulative = 0, []
        for count in y:
            total += count
            cumulative.append(total)
        specs["throughput"] = {
            "data": [
                {"type": "bar", "x": x, "y": y, "name": f"labels per {overview.throughput_unit}"},
                {
                    "type": "scatter",
                    "x": x,
                    "y": cumulative,
                    "name": "labels so far",
                    "yaxis": "y2",
                },
            ],
            "layout": {
                "yaxis": {"title": {"text": f"per {overview.throughput_unit}"}},
                "yaxis2": {"overlaying": "y", "side": "right", "title": {"text": "total"}},
                "legend": {"orientation": "h", "y": -0.2},
            },
        }
    if overview.annotators:
        people = overview.annotators
        specs["annotators"] = {
            "data": [
                {
                    "type": "bar",
                    "x": [a.annotator for a in people],
                    "y": [a.labels - a.rejected for a in people],
                    "name": "kept",
                },
                {
                    "type": "bar",
                    "x": [a.annotator for a in people],
                    "y": [a.rejected for a in people],
                    "name": "rejected",
                },
            ],
            "layout": {"barmode": "stack", "legend": {"orientation": "h", "y": -0.25}},
        }
    measured = [a for a in overview.agreement if a.value is not None]
    if measured:
        specs["agreement"] = {
            "data": [
                {
                    "type": "bar",
                    "x": [a.question for a in measured],
                    "y": [a.value for a in measured],
                    "error_y": {
                        "type": "data",
                        "symmetric": False,
                        "array": [(a.high or a.value) - a.value for a in measured],  # type: ignore[operator]
                        "arrayminus": [a.value - (a.low or a.value) for a in measured],  # type: ignore[operator]
                    },
                }
            ],
            "layout": {
                "yaxis": {
                    "range": [min(-0.1, *(a.value for a in measured if a.value is not None)), 1],
                    "title": {"text": "α"},
                }
            },
        }
    for confusion in overview.confusions:
        matrix = confusion.gold or confusion.pairs
        specs[f"confusion-{confusion.question}"] = {
            "data": [
                {
                    "type": "heatmap",
                    "z": matrix,
                    "x": confusion.labels,
                    "y": confusion.labels,
                    "colorscale": "Blues",
                    "hovertemplate": "%{y} → %{x}: %{z}<extra></extra>",
                }
            ],
            "layout": {
                "xaxis": {"title": {"text": "annotator's label"}, "type": "category"},
                "yaxis": {
                    "title": {
                        "text": "gold label" if confusion.gold else "another annotator's label"
                    },
                    "type": "category",
                    "autorange": "reversed",
                },
            },
        }
    return specs


@router.get("/projects/{project_id}/dashboard", name="dashboard")
def dashboard_page(
    project_id: PageId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    seen = projects.access(session, user, project_id)
    policies.authorize(
        user, policies.can_view_dashboard(seen.role), "only owners and reviewers see the dashboard"
    )
    overview = dashboard.project_overview(session, seen.project)
    context = {
        "project": seen.project,
        "o": overview,
        "charts": charts(overview),
        "plotly_version": plotly_version,
        "can_export": policies.can_export(seen.role)(user),
        "can_manage": policies.can_manage_project(seen.role)(user),
        "export_formats": EXPORT_FORMATS,
        "export_ready": False,
    }
    return render(request, "dashboard.html", context)
