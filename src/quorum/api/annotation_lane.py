"""A lane for the annotation loop: the three calls every label makes, without the framework.

``POST /api/v1/projects/{id}/next``, ``/assignments/{id}/submit`` and ``.../skip`` are most of
a busy server's requests. Going through Starlette's and FastAPI's layers (middlewares wrapping
``send``, telemetry checks, routing, dependency resolution, response classes) cost about as
much CPU as the domain work itself (measured; docs/assignment.md). This lane, in front of the
whole app (``quorum.app.QuorumApp``), answers an ordinary call of the three itself, with the
route handlers' own domain functions, reply models and error bodies. Anything it does not
recognise as ordinary goes on to the app unchanged, so every error and edge case keeps exactly
the framework's behaviour:

- a request without a bearer token, with a body that is not plain JSON (other content type,
  no ``Content-Length``, over ``MAX_BODY``, malformed JSON, a body the model refuses), an id
  out of range, or a bad ``Idempotency-Key`` header goes on to the app (with its body replayed);
- an error the domain raises is rendered as the app's handler for it renders it, and so is a
  crash (logged, then a 500 with the usual error body).

The routes stay declared on the app, so the OpenAPI document and the fallback are the same
code. ``tests/api/test_annotation_lane.py`` compares the lane's replies with the app's. The
lane's calls do not appear in FastAPI's OpenTelemetry spans, when those are set up.
"""

import json
import re
import time
from collections.abc import Awaitable, Callable

from pydantic import BaseModel, ValidationError
from starlette.datastructures import State
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quorum.api.assignments import MAX_KEY, annotation_reply, lease_reply, skip_reply
from quorum.api.deps import token_in
from quorum.api.errors import domain_error_response, server_error_response
from quorum.api.schemas import MAX_ID, SubmissionCreate
from quorum.db.engine import Database
from quorum.domain import assignments
from quorum.domain.errors import DomainError

# Larger bodies go the framework's way; a submission is a few hundred bytes.
MAX_BODY = 1024 * 1024

_ROUTE = re.compile(
    r"/api/v1/(?:projects/([0-9]{1,19})/next|assignments/([0-9]{1,19})/(submit|skip))"
)
_JSON = [(b"content-type", b"application/json")]

Answer = Callable[[Database, int, str, dict[str, str], bytes], Awaitable[BaseModel | None]]


class AnnotationLane:
    """Serves the ordinary calls of the annotation loop; hands everything else to ``app``.

    ``state`` is the app's state (its ``database``). The lane runs in front of the whole app,
    framework middlewares included (``quorum.app.QuorumApp``), so it renders its own replies,
    errors and crashes with the app's error bodies.
    """

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        found = _ROUTE.fullmatch(scope["path"])
        headers = _headers(scope) if found is not None else None
        token = token_in(headers.get("authorization", "")) if headers is not None else None
        if found is None or headers is None or token is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        project, assignment, action = found.groups()
        number = int(project or assignment)
        body = b""
        if action == "submit":
            if not _plain_json(headers):
                await self.app(scope, receive, send)
                return
            read = await _body(receive)
            if read is None:  # the client went away
                return
            body = read
        answer: Answer = _next if action is None else _submit if action == "submit" else _skip
        try:
            reply = await answer(self.state.database, number, token, headers, body)
        except _Declined:
            await self.app(scope, _replay(body, receive), send)
            return
        except DomainError as error:
            await _send_error(domain_error_response(error), scope, receive, send, started)
            return
        except Exception as error:  # as the framework's last-resort handler does (no timing)
            crash = server_error_response(scope["method"], scope["path"], error)
            await crash(scope, receive, send)
            return
        await _send(send, reply, started)


async def _send_error(
    response: Response, scope: Scope, receive: Receive, send: Send, started: float
) -> None:
    response.headers.append("Server-Timing", _timing(started))
    await response(scope, receive, send)


class _Declined(Exception):
    """Not an ordinary call: the app answers it (nothing was changed)."""


async def _next(
    database: Database, project_id: int, token: str, headers: dict[str, str], body: bytes
) -> BaseModel | None:
    if not 1 <= project_id <= MAX_ID:
        raise _Declined
    lease = await assignments.lease_by_token(database, project_id, token)
    return None if lease is None else lease_reply(lease)


async def _submit(
    database: Database, assignment_id: int, token: str, headers: dict[str, str], body: bytes
) -> BaseModel:
    key = headers.get("idempotency-key")
    if not 1 <= assignment_id <= MAX_ID or (key is not None and not 1 <= len(key) <= MAX_KEY):
        raise _Declined
    try:
        # Parsed as the framework parses a JSON body (json.loads, then the model), so that
        # what the lane accepts is exactly what the route accepts.
        request = SubmissionCreate.model_validate(json.loads(body))
    except (ValueError, ValidationError):  # JSONDecodeError and UnicodeDecodeError included
        raise _Declined from None
    submission = assignments.Submission(assignment_id, request.answers, request.duration_ms, key)
    return annotation_reply(await assignments.submit_by_token(database, token, submission))


async def _skip(
    database: Database, assignment_id: int, token: str, headers: dict[str, str], body: bytes
) -> BaseModel:
    if not 1 <= assignment_id <= MAX_ID:
        raise _Declined
    return skip_reply(await assignments.skip_by_token(database, assignment_id, token))


def _headers(scope: Scope) -> dict[str, str] | None:
    """The request's headers by lower-case name; None when one the lane reads is repeated."""
    found: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        if name in found and name in _READ:
            return None
        found[name] = raw_value.decode("latin-1")
    return found


_READ = {"authorization", "content-type", "content-length", "idempotency-key"}


def _plain_json(headers: dict[str, str]) -> bool:
    media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    length = headers.get("content-length", "")
    return media_type == "application/json" and length.isdigit() and 0 < int(length) <= MAX_BODY


async def _body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app after the lane read the body: the body once, then the client."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


async def _send(send: Send, reply: BaseModel | None, started: float) -> None:
    timing = (b"server-timing", _timing(started).encode())
    if reply is None:
        await send({"type": "http.response.start", "status": 204, "headers": [timing]})
        await send({"type": "http.response.body", "body": b""})
        return
    content = reply.__pydantic_serializer__.to_json(reply, by_alias=True)
    length = (b"content-length", str(len(content)).encode())
    await send({"type": "http.response.start", "status": 200, "headers": [length, *_JSON, timing]})
    await send({"type": "http.response.body", "body": content})


def _timing(started: float) -> str:
    return f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
