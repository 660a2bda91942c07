"""The vendor audit page: every vendor against the experts, compared in one chart (owners).

The report is ``quorum.domain.audit_report``'s; the chart is a Plotly figure described in JSON
on the page and drawn by ``charts.js``, like the dashboard's.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from plotly import __version__ as plotly_version

from quorum.domain import audit_report, audits, policies, projects
from quorum.domain.audit_report import AuditReport, VendorReport
from quorum.domain.errors import Conflict, Invalid
from quorum.web.deps import CurrentUser, PageId, SessionDep, flash, render

router = APIRouter()
Figure = dict[str, Any]


def _audited(session: SessionDep, user: CurrentUser, project_id: int) -> projects.ProjectAccess:
    seen = projects.access(session, user, project_id)
    policies.authorize(user, policies.can_audit(seen.role), "only the project's owners audit")
    return seen


@router.get("/projects/{project_id}/audit", name="web_audit")
def audit_page(
    project_id: PageId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    seen = _audited(session, user, project_id)
    vendors = audits.list_vendors(session, seen.project)
    report = audit_report.report(session, seen.project) if vendors else None
    context = {
        "project": seen.project,
        "report": report,
        "charts": charts(report) if report else {},
        "plotly_version": plotly_version,
    }
    return render(request, "audit.html", context)


@router.post("/projects/{project_id}/audit/sample", name="web_audit_sample")
def draw_sample(
    project_id: PageId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    width: Annotated[float, Form(gt=0, lt=1)] = 0.1,
    expected_accuracy: Annotated[float, Form(ge=0, le=1)] = 0.5,
) -> Response:
    seen = _audited(session, user, project_id)
    try:
        drawn = audits.draw_sample(
            session, seen.project, width=width, expected_accuracy=expected_accuracy
        )
    except (Invalid, Conflict) as error:
        session.rollback()
        flash(request, error.message, "error")
    else:
        added = sum(v.drawn for v in drawn)
        flash(
            request, f"{added} more tasks drawn for your experts, at the front of the queue.", "ok"
        )
    return RedirectResponse(f"/projects/{project_id}/audit", status_code=303)


def charts(report: AuditReport) -> dict[str, Figure]:
    """The comparison: accuracy with its Wilson and bootstrap 95% intervals per vendor, and
    the cost of a correct label where the price is known."""
    measured = [v for v in report.vendors if v.accuracy is not None]
    if not measured:
        return {}
    specs = {"vendors": _accuracy(measured)}
    priced = [v for v in measured if v.cost_per_correct_label_cents is not None]
    if priced:
        specs["cost"] = _cost(priced)
    return specs


def _errors(values: list[float], intervals: list[Any]) -> dict[str, Any]:
    return {
        "type": "data",
        "symmetric": False,
        "array": [i.high - v for v, i in zip(values, intervals, strict=True)],
        "arrayminus": [v - i.low for v, i in zip(values, intervals, strict=True)],
    }


def _accuracy(vendors: list[VendorReport]) -> Figure:
    names = [v.vendor for v in vendors]
    values = [v.accuracy or 0.0 for v in vendors]
    return {
        "data": [
            {
                "type": "bar",
                "x": names,
                "y": values,
                "name": "accuracy, 95% Wilson interval",
                "error_y": _errors(values, [v.wilson for v in vendors]),
                "hovertemplate": "%{x}: %{y:.1%}<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "markers",
                "x": names,
                "y": values,
                "name": "95% bootstrap interval",
                "marker": {"symbol": "line-ew-open", "size": 14},
                "error_y": {**_errors(values, [v.bootstrap for v in vendors]), "color": "#b45309"},
                "hoverinfo": "skip",
            },
        ],
        "layout": {
            "yaxis": {"range": [0, 1], "tickformat": ".0%", "title": {"text": "accuracy"}},
            "legend": {"orientation": "h", "y": -0.2},
        },
    }


def _cost(vendors: list[VendorReport]) -> Figure:
    values = [v.cost_per_correct_label_cents or 0.0 for v in vendors]
    intervals = [v.cost_interval for v in vendors]
    bar: Figure = {
        "type": "bar",
        "x": [v.vendor for v in vendors],
        "y": values,
        "hovertemplate": "%{x}: %{y:.2f}¢<extra></extra>",
    }
    if all(i is not None for i in intervals):
        bar["error_y"] = _errors(values, intervals)
    return {
        "data": [bar],
        "layout": {"yaxis": {"title": {"text": "cents per correct label"}, "rangemode": "tozero"}},
    }
