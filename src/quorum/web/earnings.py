"""An annotator's own earnings: the ledger's statement, newest entries first."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from quorum.domain import ledger
from quorum.web.deps import CurrentUser, SessionDep, render

router = APIRouter()
SHOWN = 200


@router.get("/account/earnings", name="web_earnings")
def earnings_page(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    statement = ledger.statement(session, user)
    lines = list(reversed(statement.lines))[:SHOWN]
    return render(request, "earnings.html", {"s": statement, "lines": lines, "shown": SHOWN})
