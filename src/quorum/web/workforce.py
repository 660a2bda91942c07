"""Annotator profiles on pages: tier, domains with levels, pay rate.

Admins edit anyone's profile (also from their admin user page); owners edit the tier and domains
of the people in their projects (from the members page); pay rates are for admins only, since
they hold in every project. The form works without JavaScript: each domain is a row with a
name and a level, with empty rows to add more; a row left without a name is dropped.
"""

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from quorum.db.models import User
from quorum.domain import policies, users, workforce
from quorum.domain.errors import Invalid, Problem
from quorum.domain.workforce import Profile
from quorum.web.auth import safe_next
from quorum.web.deps import CurrentUser, PageId, PostedForm, SessionDep, flash, render

router = APIRouter()
EMPTY_ROWS = 3
LEVELS = (1, 2, 3, 4, 5)
TIERS = (1, 2, 3)


@dataclass(frozen=True)
class ProfileForm:
    """What the form shows: the stored profile, or what was posted when it had problems."""

    tier: int
    pay_rate: str  # dollars, "" for the project's rate
    domains: list[tuple[str, int]]
    problems: list[Problem] = field(default_factory=list)

    @classmethod
    def of(cls, profile: Profile) -> "ProfileForm":
        cents = profile.pay_rate_cents
        rate = "" if cents is None else f"{Decimal(cents) / 100:.2f}"
        return cls(profile.tier, rate, list(profile.domains.items()))

    @property
    def rows(self) -> list[tuple[str, int]]:
        return [*self.domains, *[("", 1)] * EMPTY_ROWS]


def form_context(viewer: User, person: User, shown: ProfileForm) -> dict[str, Any]:
    """What ``_profile_form.html`` needs, for the profile page and the admin user page."""
    return {
        "person": person,
        "profile_form": shown,
        "levels": LEVELS,
        "profile_tiers": TIERS,
        "can_set_pay_rate": policies.can_set_pay_rate()(viewer),
    }


def _person(session: Session, viewer: User, user_id: int) -> User:
    """The person whose profile ``viewer`` may manage; 404 for anyone else's."""
    person = users.get(session, user_id)
    owns = workforce.owns_a_project_of(session, viewer, person)
    policies.reveal(viewer, policies.can_manage_profile_of(owns), f"user {user_id}")
    return person


@router.get("/people/{user_id}/profile", name="web_profile")
def profile_page(
    user_id: PageId, request: Request, session: SessionDep, user: CurrentUser, next: str = ""
) -> Response:
    person = _person(session, user, user_id)
    shown = ProfileForm.of(workforce.profile(session, person))
    context = form_context(user, person, shown) | {"next": safe_next(next or None)}
    return render(request, "profile.html", context)


@router.post("/people/{user_id}/profile", name="web_save_profile")
def save_profile(
    user_id: PageId, request: Request, session: SessionDep, user: CurrentUser, form: PostedForm
) -> Response:
    """Save tier, domains and (admins) pay rate together, all or nothing."""
    person = _person(session, user, user_id)
    back = safe_next(_text(form, "next") or f"/people/{user_id}/profile")
    posted = _posted(form)
    try:
        rate = _pay_rate(posted.pay_rate) if "pay_rate" in form else None
        if "pay_rate" in form:
            policies.authorize(user, policies.can_set_pay_rate(), "only admins set pay rates")
        workforce.set_profile(
            session,
            person,
            tier=posted.tier,
            pay_rate_cents=rate,
            clear_pay_rate="pay_rate" in form and rate is None,
            domains=_domains(posted.domains),
        )
    except Invalid as error:
        session.rollback()
        shown = ProfileForm(posted.tier, posted.pay_rate, posted.domains, error.details)
        context = form_context(user, person, shown) | {"next": back}
        return render(request, "profile.html", context, status_code=422)
    flash(request, f"Saved the profile of {person.email}.", "ok")
    return RedirectResponse(back, status_code=303)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _posted(form: FormData) -> ProfileForm:
    """The form as posted, before any check (so it can be shown again with its problems)."""
    tier_text = _text(form, "tier")
    tier = int(tier_text) if tier_text.isdigit() and len(tier_text) < 3 else 0
    names = [n.strip() if isinstance(n, str) else "" for n in form.getlist("domain")]
    levels = [v if isinstance(v, str) else "" for v in form.getlist("level")]
    rows = [
        (name, int(level) if level.isdigit() and len(level) < 3 else 0)
        for name, level in zip(names, levels, strict=False)
        if name
    ]
    return ProfileForm(tier, _text(form, "pay_rate"), rows)


def _domains(rows: list[tuple[str, int]]) -> dict[str, int]:
    found: dict[str, int] = {}
    for name, level in rows:
        key = name.lower()
        if key in found:
            raise Invalid.one(f"domains.{name}", "each domain once")
        found[key] = level
    return found


def _pay_rate(text: str) -> int | None:
    """Dollars per label ("0.25") to cents; empty: the project's rate."""
    if not text:
        return None
    try:
        dollars = Decimal(text.removeprefix("$"))
    except InvalidOperation:
        raise Invalid.one("pay_rate", "write an amount in dollars, as 0.25") from None
    cents = dollars * 100
    if not dollars.is_finite() or cents != cents.to_integral_value() or dollars < 0:
        raise Invalid.one("pay_rate", "an amount of dollars and whole cents, 0 or more")
    if cents > workforce.MAX_PAY_RATE_CENTS:
        raise Invalid.one("pay_rate", "is too large")
    return int(cents)
