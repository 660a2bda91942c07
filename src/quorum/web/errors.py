"""Errors on pages: HTML for people, the API's JSON shape for the pages' own fetches.

The API installs its handlers first; these wrap them, so anything under ``/api`` keeps the
JSON contract and only page requests get HTML.
"""

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from quorum.api.errors import domain_headers, domain_status
from quorum.domain.errors import DomainError, problems_from_pydantic
from quorum.web.deps import CsrfRejected, SignInRequired, render, wants_json

log = logging.getLogger("quorum.web")
Handler = Callable[[Request, Exception], Response | Awaitable[Response]]
API_PREFIXES = ("/api/", "/openapi.json", "/healthz")

TITLES = {
    400: "Bad request",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Conflict",
    413: "Too large",
    422: "Invalid input",
    429: "Too many attempts",
    500: "Something went wrong",
    503: "Busy",
}


def is_api(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIXES)


def _json(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, object]],
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


def page_error(request: Request, status: int, message: str, code: str = "error") -> Response:
    if wants_json(request):
        return _json(status, code, message, [])
    context = {"status": status, "title": TITLES.get(status, "Error"), "message": message}
    return render(request, "error.html", context, status_code=status)


def _domain(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    status = domain_status(exc)
    if wants_json(request):
        headers = domain_headers(status) if status == 503 else None  # pages sign in by cookie
        return _json(status, exc.code, exc.message, exc.details, headers)
    return page_error(request, status, exc.message, exc.code)


def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "There is no such page." if exc.status_code == 404 else str(exc.detail)
    return page_error(request, exc.status_code, message)


def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(tuple(e["loc"])[:1] == ("path",) for e in errors):
        # Pages only take ids in their paths; a malformed one names no page.
        return page_error(request, 404, "There is no such page.")
    # A form or query field: name it ("role", not "body.role"), as the API does.
    problems = problems_from_pydantic([{**e, "loc": tuple(e["loc"])[1:]} for e in errors])
    message = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    if wants_json(request):
        return _json(422, "validation_error", message, list(problems))
    return page_error(request, 422, message, "validation_error")


def _sign_in_required(request: Request, exc: Exception) -> Response:
    if wants_json(request) or request.method != "GET":
        return _json(401, "unauthorized", "you are signed out; sign in again", [])
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/sign-in?next={quote(target)}", status_code=303)


def _csrf(request: Request, exc: Exception) -> Response:
    message = "This form has expired or did not come from Quorum. Reload the page and try again."
    return page_error(request, 403, message, "csrf_failed")


def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return page_error(request, 500, "This is a bug in Quorum; it has been logged.")


def _dispatch(api: Handler, page: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        response = (api if is_api(request) else page)(request, exc)
        return await response if isinstance(response, Awaitable) else response

    return handle


def install(app: FastAPI) -> None:
    """Route errors of page requests to HTML; call after the API installed its handlers."""
    pages: dict[type[Exception], Handler] = {
        DomainError: _domain,
        HTTPException: _http,
        RequestValidationError: _validation,
        Exception: _server_error,
    }
    for cls, page in pages.items():
        api = app.exception_handlers.get(cls)
        app.add_exception_handler(cls, _dispatch(api, page) if api else page)
    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.add_exception_handler(CsrfRejected, _csrf)
