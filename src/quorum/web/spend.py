"""A project's money (owners): budget, spend, forecast to completion, cost per label, ledger."""

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from plotly import __version__ as plotly_version

from quorum.domain import budget, ledger, policies, projects
from quorum.web.deps import CurrentUser, PageId, SessionDep, render

router = APIRouter()


@router.get("/projects/{project_id}/spend", name="web_spend")
def spend_page(
    project_id: PageId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    seen = projects.access(session, user, project_id)
    policies.authorize(
        user, policies.can_see_spend(seen.role), "only the project's owners see spend"
    )
    figures = budget.spend(session, seen.project)
    points = ledger.spend_by_day(session, seen.project.id)
    context = {
        "project": seen.project,
        "s": figures,
        "entries": ledger.recent_entries(session, seen.project),
        "charts": {"spend": _spend_chart(points, figures)} if points else {},
        "plotly_version": plotly_version,
    }
    return render(request, "spend.html", context)


def _spend_chart(points: list[Any], figures: budget.Spend) -> dict[str, Any]:
    """Spend so far by day, in currency units, with the budget and the forecast as lines."""
    # NOTE: from zero the day before the first spend: with one day of spend, a lone point
    # gave a time axis of milliseconds and budget and forecast lines of no length.
    points = [(points[0][0] - timedelta(days=1), 0), *points]
    x = [day.isoformat() for day, _ in points]
    data: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "lines+markers", "x": x, "y": [c / 100 for _, c in points],
         "name": "spent", "line": {"shape": "hv"}},
    ]  # fmt: skip
    for name, cents in (("budget", figures.budget_cents), ("forecast", figures.forecast_cents)):
        if cents is not None:
            data.append(
                {"type": "scatter", "mode": "lines", "x": [x[0], x[-1]], "y": [cents / 100] * 2,
                 "name": name, "line": {"dash": "dot"}}
            )  # fmt: skip
    return {
        "data": data,
        "layout": {
            "xaxis": {"type": "date"},
            "yaxis": {"rangemode": "tozero", "tickformat": ",.2f"},
            "legend": {"orientation": "h", "y": -0.2},
        },
    }
