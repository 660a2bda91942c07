"""Admin pages (users, profiles, roles, tokens) and everyone's own account page (profile,
accuracy, tokens)."""

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from quorum.db.models import User
from quorum.domain import accounts, policies, quality_report, users, workforce
from quorum.domain.errors import Conflict, Invalid
from quorum.web.deps import CurrentUser, PageId, SessionDep, flash, render
from quorum.web.workforce import ProfileForm, form_context

router = APIRouter()


def _admin(user: User) -> None:
    policies.authorize(user, policies.can_manage_users(), "only admins manage users")


@router.get("/admin/users", name="web_admin_users")
def users_page(
    request: Request, session: SessionDep, user: CurrentUser, cursor: str | None = None
) -> Response:
    _admin(user)
    page = accounts.list_users(session, cursor=cursor)
    counts = accounts.member_counts(session, [u.id for u in page.items])
    context = {
        "people": page.items,
        "counts": counts,
        "next_cursor": page.next_cursor,
        "tiers": accounts.TIERS,
    }
    return render(request, "admin_users.html", context)


@router.post("/admin/users", name="web_admin_create_user")
def create_user(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    email: Annotated[str, Form(max_length=320)],
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    is_admin: Annotated[bool, Form()] = False,
    tier: Annotated[int, Form()] = 1,
) -> Response:
    _admin(user)
    try:
        created = accounts.create_user(
            session, email=email, name=name, password=password, is_admin=is_admin, tier=tier
        )
    except (Invalid, Conflict) as error:
        session.rollback()
        flash(request, error.message, "error")
        return RedirectResponse("/admin/users", status_code=303)
    flash(request, f"Created {created.email}.", "ok")
    return RedirectResponse(f"/admin/users/{created.id}", status_code=303)


def _person_context(session: SessionDep, admin: User, person: User, **extra: Any) -> dict[str, Any]:
    shown = ProfileForm.of(workforce.profile(session, person))
    return {
        **form_context(admin, person, shown),
        "roles": accounts.roles_of(session, person),
        "tokens": accounts.tokens_of(session, person),
        "token_action": f"/admin/users/{person.id}/tokens",
        "next": f"/admin/users/{person.id}",
        **extra,
    }


@router.get("/admin/users/{user_id}", name="web_admin_user")
def user_page(
    user_id: PageId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    _admin(user)
    person = users.get(session, user_id)
    return render(request, "admin_user.html", _person_context(session, user, person))


@router.post("/admin/users/{user_id}", name="web_admin_update_user")
def update_user(
    user_id: PageId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    is_admin: Annotated[bool, Form()] = False,
    is_active: Annotated[bool, Form()] = False,
) -> Response:
    """Admin rights and whether the account works; the profile has its own form."""
    _admin(user)
    person = users.get(session, user_id)
    try:
        accounts.set_admin(session, user, person, is_admin)
        accounts.set_active(session, user, person, is_active)
    except (Invalid, Conflict) as error:
        session.rollback()
        flash(request, error.message, "error")
    else:
        flash(request, f"Saved {person.email}.", "ok")
    return RedirectResponse(f"/admin/users/{user_id}", status_code=303)


@router.post("/admin/users/{user_id}/tokens", name="web_admin_create_token")
def create_token_for(
    user_id: PageId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    _admin(user)
    person = users.get(session, user_id)
    row, token = accounts.create_token(session, person, name)
    # Rendered, not redirected: the token must not pass through the (readable) session cookie.
    return render(
        request, "admin_user.html", _person_context(session, user, person, new_token=token)
    )


@router.post("/admin/users/{user_id}/tokens/{token_id}/revoke", name="web_admin_revoke_token")
def revoke_token_of(
    user_id: PageId, token_id: PageId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    _admin(user)
    person = users.get(session, user_id)
    accounts.revoke_token(session, user, person, token_id)
    flash(request, "Token revoked.", "ok")
    return RedirectResponse(f"/admin/users/{user_id}", status_code=303)


def _account_context(session: SessionDep, user: User, **extra: Any) -> dict[str, Any]:
    return {
        "tokens": accounts.tokens_of(session, user),
        "token_action": "/account/tokens",
        "profile": workforce.profile(session, user),
        "own": quality_report.own_view(session, user),
        **extra,
    }


@router.get("/account", name="web_account")
def account_page(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    return render(request, "account.html", _account_context(session, user))


@router.post("/account/tokens", name="web_create_token")
def create_token(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    _, token = accounts.create_token(session, user, name)
    return render(request, "account.html", _account_context(session, user, new_token=token))


@router.post("/account/tokens/{token_id}/revoke", name="web_revoke_token")
def revoke_token(
    token_id: PageId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    accounts.revoke_token(session, user, user, token_id)
    flash(request, "Token revoked.", "ok")
    return RedirectResponse("/account", status_code=303)
