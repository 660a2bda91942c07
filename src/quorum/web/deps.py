"""Request plumbing for pages: database session, signed-in user, CSRF, rendering, flashes.

Sessions are signed cookies (Starlette's SessionMiddleware, itsdangerous): ``uid`` names the
user, ``fp`` fingerprints their password hash so a password change ends other sessions, and
``csrf`` is the token every form and state-changing fetch must echo.
"""

import secrets
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from quorum.db.engine import Database
from quorum.db.models import User
from quorum.domain import accounts
from quorum.web.templating import TEMPLATES

READ_METHODS = {"GET", "HEAD", "OPTIONS"}
MAX_ID = 2**63 - 1  # the largest id either database stores
PageId = Annotated[int, Path(ge=1, le=MAX_ID)]
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class SignInRequired(Exception):
    """The page needs a signed-in user; pages redirect to sign in, fetches get a 401."""


class CsrfRejected(Exception):
    """A state-changing request without the session's CSRF token."""


def get_session(request: Request) -> Iterator[Session]:
    database: Database = request.app.state.database
    with database.session(write=request.method not in READ_METHODS) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def optional_user(request: Request, session: SessionDep) -> User | None:
    uid = request.session.get("uid")
    if not isinstance(uid, int):
        return None
    user = session.get(User, uid)
    if (
        user is None
        or not user.is_active
        or request.session.get("fp") != accounts.session_fingerprint(user)
    ):
        request.session.clear()
        return None
    request.state.user = user
    return user


def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise SignInRequired()
    return user


OptionalUser = Annotated[User | None, Depends(optional_user)]
CurrentUser = Annotated[User, Depends(current_user)]


def start_session(request: Request, user: User) -> None:
    """A fresh session for ``user``: nothing from the anonymous one carries over."""
    request.session.clear()
    request.session.update(
        uid=user.id, fp=accounts.session_fingerprint(user), csrf=secrets.token_urlsafe(32)
    )


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def check_csrf(request: Request) -> None:
    """Every unsafe request carries the token: a header from fetch, a field from a form."""
    if request.method in READ_METHODS:
        return
    expected = request.session.get("csrf")
    sent: Any = request.headers.get(CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    if sent is None and content_type.startswith(FORM_TYPES):
        sent = (await request.form()).get(CSRF_FIELD)
    if not isinstance(expected, str) or not isinstance(sent, str):
        raise CsrfRejected()
    if not secrets.compare_digest(sent.encode(), expected.encode()):
        raise CsrfRejected()


async def posted_form(request: Request) -> FormData:
    """The parsed form, for sync handlers (which run in a thread and cannot await it)."""
    return await request.form()


PostedForm = Annotated[FormData, Depends(posted_form)]


def flash(request: Request, message: str, kind: str = "info") -> None:
    """A message shown once, on the next page rendered (survives the redirect after a POST)."""
    request.session["flash"] = [*request.session.get("flash", []), [kind, message]]


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    flashes = request.session.pop("flash", []) if "flash" in request.session else []
    page = {
        "user": getattr(request.state, "user", None),
        "csrf_token": csrf_token(request),
        "flashes": flashes,
        **(context or {}),
    }
    return TEMPLATES.TemplateResponse(request, template, page, status_code=status_code)


def render_fragment(request: Request, template: str, context: dict[str, Any]) -> str:
    """A partial rendered to a string, for fetches that swap part of a page."""
    page = {"request": request, "csrf_token": csrf_token(request), **context}
    return TEMPLATES.get_template(template).render(page)
