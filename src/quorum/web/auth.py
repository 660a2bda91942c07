"""Sign in and out."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from quorum.domain import accounts
from quorum.domain.errors import Unauthorized
from quorum.web.deps import OptionalUser, SessionDep, flash, render, start_session

router = APIRouter()


def safe_next(target: str | None) -> str:
    """Only a path on this site: ``next=https://evil.example`` must not become a redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/projects"
    return target


@router.get("/sign-in", name="web_sign_in")
def sign_in_page(request: Request, user: OptionalUser, next: str | None = None) -> Response:
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "sign_in.html", {"next": safe_next(next), "email": ""})


@router.post("/sign-in", name="web_sign_in_submit")
def sign_in(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/projects",
) -> Response:
    ip = request.client.host if request.client else "unknown"
    try:
        user = accounts.sign_in(session, email, password, ip=ip)
    except accounts.TooManyAttempts as error:
        context = {"next": safe_next(next), "email": email, "error": _sentence(error.message)}
        return render(request, "sign_in.html", context, status_code=429)
    except Unauthorized:
        context = {"next": safe_next(next), "email": email, "error": "Wrong email or password."}
        return render(request, "sign_in.html", context, status_code=401)
    start_session(request, user)
    return RedirectResponse(safe_next(next), status_code=303)


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + "."


@router.post("/sign-out", name="web_sign_out")
def sign_out(request: Request) -> Response:
    request.session.clear()
    flash(request, "You are signed out.")
    return RedirectResponse("/sign-in", status_code=303)
