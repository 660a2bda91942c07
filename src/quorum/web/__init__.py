"""The web app: server-rendered pages that call the domain directly (never the HTTP API).

``install`` adds the session cookie, security headers, static files and the page routes to the
app that ``quorum.app.create_app`` builds.
"""

from fastapi import APIRouter, Depends, FastAPI
from starlette.middleware.sessions import SessionMiddleware
from starlette.staticfiles import StaticFiles

from quorum.config import Settings
from quorum.web import (
    admin,
    annotations,
    audits,
    auth,
    dashboard,
    earnings,
    errors,
    export,
    home,
    labeling,
    members,
    projects,
    quality,
    review,
    spend,
    vendor,
    workforce,
)
from quorum.web.deps import check_csrf
from quorum.web.headers import PageHeaders
from quorum.web.templating import STATIC

SESSION_COOKIE = "quorum_session"

PAGE_MODULES = (
    auth,
    home,
    labeling,
    review,
    annotations,
    projects,
    dashboard,
    quality,
    export,
    members,
    audits,
    spend,
    earnings,
    admin,
    workforce,
)
router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf)])
for module in PAGE_MODULES:
    router.include_router(module.router)


def install(app: FastAPI, settings: Settings) -> None:
    errors.install(app)
    app.include_router(router)
    app.include_router(vendor.router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_middleware(PageHeaders)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie=SESSION_COOKIE,
        max_age=settings.session_max_age_seconds,
        same_site="lax",
        https_only=settings.secure_cookies,
    )
