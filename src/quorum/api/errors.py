"""Every error leaves the API as ``{"error": {"code", "message", "details"}}``."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from quorum.domain.errors import (
    Conflict,
    Contended,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    Problem,
    Unauthorized,
    problems_from_pydantic,
)
from quorum.domain.questions import KINDS

log = logging.getLogger("quorum.api")

STATUS = {
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Invalid: 422,
    Contended: 503,
}
RETRY_AFTER_SECONDS = 1  # a lost race clears as soon as the winner commits
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}


class ErrorBody(BaseModel):
    code: str = Field(examples=["validation_error"])
    message: str
    details: list[dict[str, Any]] = Field(
        description="one entry per problem: {field, message} and, for imports, line"
    )


class ErrorResponse(BaseModel):
    error: ErrorBody


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[Problem] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or []}}
    return JSONResponse(body, status_code=status, headers=headers)


class PayloadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body exceeds {limit} bytes")


class BadRequest(Exception):
    """A request the API cannot even parse (malformed JSON, bad encoding); ``status`` 415 when
    it is the body's media type that the API does not read."""

    def __init__(
        self, message: str, details: list[Problem] | None = None, *, status: int = 400
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.status = status


def _domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return domain_error_response(exc)


def domain_status(exc: DomainError) -> int:
    return next(s for cls, s in STATUS.items() if isinstance(exc, cls))


def domain_headers(status: int) -> dict[str, str]:
    if status == 401:
        return {"WWW-Authenticate": "Bearer"}
    if status == 503:
        return {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return {}


def domain_error_response(exc: DomainError) -> JSONResponse:
    status = domain_status(exc)
    return error_response(status, exc.code, exc.message, exc.details, domain_headers(status))


def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    malformed = [e for e in errors if e.get("type") == "json_invalid"]
    if malformed:
        reason = malformed[0].get("ctx", {}).get("error", "malformed JSON")
        position = malformed[0]["loc"][-1]
        where = f" at character {position}" if isinstance(position, int) else ""
        return error_response(400, "bad_request", f"the body is not valid JSON: {reason}{where}")
    for error in errors:  # the body is implied: "answers.label", not "body.answers.label"
        loc = tuple(error["loc"])
        error["loc"] = loc[1:] if loc[:1] == ("body",) and len(loc) > 1 else loc
    problems = problems_from_pydantic(errors, tags=KINDS)
    first = problems[0] if problems else {"field": "body", "message": "invalid"}
    return error_response(
        422, "validation_error", f"{first['field']}: {first['message']}", problems
    )


def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))


def _too_large(_: Request, exc: Exception) -> JSONResponse:
    return error_response(413, "payload_too_large", str(exc))


def _bad_request(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BadRequest)
    return error_response(exc.status, HTTP_CODES[exc.status], exc.message, exc.details)


def _server_error(request: Request, exc: Exception) -> JSONResponse:
    return server_error_response(request.method, request.url.path, exc)


def server_error_response(method: str, path: str, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", method, path, exc_info=exc)
    return error_response(500, "server_error", "internal error; this is a bug in Quorum")


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(BadRequest, _bad_request)
    app.add_exception_handler(PayloadTooLarge, _too_large)
    app.add_exception_handler(Exception, _server_error)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Malformed request body",
        401: "Missing or invalid API token",
        403: "Your role does not allow this",
        404: "No such resource, or not visible to you",
        409: "Conflict with the current state",
        413: "Request body too large",
        415: "A request body of a media type this call does not read",
        422: "Invalid input; details lists each problem",
        503: "Lost races with concurrent requests and changed nothing; send it again",
    }.items()
}
