"""Money: a project's spend and ledger, bonuses and adjustments, statements, payouts
(docs/payments.md)."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from quorum.api.deps import CurrentUser, SessionDep
from quorum.api.schemas import Cursor, Email, Id, Limit, ListOf
from quorum.db.models import Account, LedgerEntry, LedgerKind, User
from quorum.domain import budget, ledger, policies, projects, users
from quorum.domain.errors import NotFound

router = APIRouter(tags=["payments"])

Period = Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}$", examples=["2026-11"])]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class SpendPublic(_Out):
    budget_cents: int | None
    pay_per_task_cents: int
    spent_cents: int = Field(description="what left the budget, net of reversals (the ledger)")
    committed_cents: int = Field(
        description="paid labels not rejected plus live leases, at the rate"
    )
    left_cents: int | None
    labels: int = Field(description="labels that earned and were not rejected")
    live_leases: int
    labels_to_finish: int
    forecast_cents: int = Field(description="spent plus the labels still to finish at the rate")
    over_budget: bool
    cost_per_label_cents: float | None
    labels_last_week: int
    days_to_finish: float | None = Field(description="at last week's pace")


class EntryPublic(_Out):
    id: int
    kind: LedgerKind
    annotator: str = Field(description="the annotator's pseudonym")
    annotation_id: int | None
    source: Account
    target: Account
    amount_cents: int
    reason: str
    created_at: datetime


class GrantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    amount_cents: int = Field(ge=-ledger.MAX_GRANT_CENTS, le=ledger.MAX_GRANT_CENTS)
    reason: str = Field(min_length=1, max_length=ledger.MAX_REASON)
    kind: Literal["bonus", "adjustment"] = "bonus"


class TotalsPublic(_Out):
    earned: int
    reversed: int
    reinstated: int
    bonuses: int
    adjustments: int
    paid_out: int


class BalancesPublic(_Out):
    pending: int
    payable: int
    paid: int


class LinePublic(_Out):
    id: int
    created_at: datetime
    kind: LedgerKind
    project_id: int | None
    project: str | None
    annotation_id: int | None
    amount_cents: int = Field(description="signed: + to the annotator, - from them")
    account: Account
    reason: str
    period: str | None


class StatementPublic(_Out):
    user_id: int
    since: datetime | None
    until: datetime | None
    totals: TotalsPublic
    balances: BalancesPublic
    lines: list[LinePublic]


class PayoutCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: Period


class PayoutRowPublic(_Out):
    user_id: int
    pseudonym: str
    email: str
    name: str
    amount_cents: int


@router.get("/projects/{project_id}/spend")
def read_spend(project_id: Id, session: SessionDep, user: CurrentUser) -> SpendPublic:
    """Budget, spend, what is committed, the forecast to completion, the cost per label."""
    seen = projects.access(session, user, project_id)
    policies.authorize(user, policies.can_see_spend(seen.role), "only owners see spend")
    return SpendPublic.model_validate(budget.spend(session, seen.project))


@router.get("/projects/{project_id}/ledger")
def list_entries(
    project_id: Id,
    session: SessionDep,
    user: CurrentUser,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> ListOf[EntryPublic]:
    """Every ledger entry charged to the project's budget, oldest first."""
    seen = projects.access(session, user, project_id)
    policies.authorize(user, policies.can_see_spend(seen.role), "only owners see spend")
    page = ledger.project_entries(session, seen.project, cursor=cursor, limit=limit)
    names = _pseudonyms(session, {entry.user_id for entry in page.items})
    items = [_entry(entry, names[entry.user_id]) for entry in page.items]
    return ListOf[EntryPublic](items=items, next_cursor=page.next_cursor)


def _pseudonyms(session: SessionDep, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    found = session.execute(select(User.id, User.pseudonym).where(User.id.in_(user_ids)))
    return {row[0]: row[1] for row in found}


def _entry(entry: LedgerEntry, pseudonym: str) -> EntryPublic:
    fields = {
        name: getattr(entry, name) for name in EntryPublic.model_fields if name != "annotator"
    }
    return EntryPublic(annotator=pseudonym, **fields)


@router.post("/projects/{project_id}/grants", status_code=status.HTTP_201_CREATED)
def grant(project_id: Id, body: GrantCreate, session: SessionDep, user: CurrentUser) -> EntryPublic:
    """A bonus (positive) or an adjustment (either sign) for a member, with its reason."""
    seen = projects.access(session, user, project_id)
    policies.authorize(user, policies.can_grant(seen.role), "only owners grant money")
    annotator = users.get_by_email(session, body.email)
    kind = LedgerKind(body.kind)
    entry = ledger.grant(
        session, seen.project, annotator, body.amount_cents, reason=body.reason, by=user, kind=kind
    )
    return _entry(entry, annotator.pseudonym)


@router.get("/me/statement")
def my_statement(
    session: SessionDep,
    user: CurrentUser,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
) -> StatementPublic:
    """Your earnings: every entry in [since, until), the totals, and your balances."""
    return StatementPublic.model_validate(ledger.statement(session, user, since=since, until=until))


@router.get("/users/{user_id}/statement")
def user_statement(
    user_id: Id,
    session: SessionDep,
    user: CurrentUser,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
) -> StatementPublic:
    """Someone's statement (admins; anyone for themselves)."""
    annotator = session.get(User, user_id)
    if annotator is None:
        raise NotFound(f"no user {user_id}")
    policies.reveal(user, policies.can_see_statement_of(annotator), f"user {user_id}")
    found = ledger.statement(session, annotator, since=since, until=until)
    return StatementPublic.model_validate(found)


@router.post("/payouts", status_code=status.HTTP_201_CREATED)
def pay_out(body: PayoutCreate, session: SessionDep, user: CurrentUser) -> list[PayoutRowPublic]:
    """Pay everyone what became payable before the end of the month ``period`` (admins)."""
    policies.authorize(user, policies.can_pay_out(), "only admins pay out")
    rows = ledger.pay_out(session, body.period, by=user)
    return [PayoutRowPublic.model_validate(row) for row in rows]


@router.get(
    "/payouts",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def payout_file(
    period: Annotated[str, Query(pattern=r"^[0-9]{4}-[0-9]{2}$", examples=["2026-11"])],
    session: SessionDep,
    user: CurrentUser,
) -> Response:
    """The payout CSV of a month: one line per annotator paid (admins)."""
    policies.authorize(user, policies.can_pay_out(), "only admins pay out")
    rows = ledger.payout_rows(session, period)
    return Response(
        ledger.payout_csv(rows, period),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="payout-{period}.csv"'},
    )
