"""Python SDK over the REST API.

    >>> from quorum.client import Client
    >>> client = Client("http://127.0.0.1:8000", token="qrm_...")  # doctest: +SKIP
    >>> project = client.create_project("Triage", schema={"questions": [...]})  # doctest: +SKIP

Errors mirror the API's:

QuorumError
   └── APIError(status, code, message, details)   from {"error": {...}}
       ├── Unauthorized 401, Forbidden 403, NotFound 404, Conflict 409, Invalid 422
       ├── BadRequest 400, PayloadTooLarge 413
       └── ServerError 5xx   always a server bug
   └── TransportError   the server could not be reached, even after retries
"""

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import orjson

JSON = dict[str, Any]
RETRY_STATUSES = {502, 503, 504}


class QuorumError(Exception):
    """Anything the SDK raises."""


class TransportError(QuorumError):
    """The server could not be reached, even after retries."""


class APIError(QuorumError):
    def __init__(
        self, status: int, code: str, message: str, details: list[JSON] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []


class BadRequest(APIError):
    pass


class Unauthorized(APIError):
    pass


class Forbidden(APIError):
    pass


class NotFound(APIError):
    pass


class Conflict(APIError):
    pass


class PayloadTooLarge(APIError):
    pass


class Invalid(APIError):
    pass


class ServerError(APIError):
    """A 5xx: always a bug in the server."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: Invalid,
}


def _raise_for_error(response: httpx.Response) -> None:
    if response.status_code >= 500:  # may not even be JSON
        raise ServerError(response.status_code, "server_error", response.text, [])
    if response.is_error:
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            error = {"code": "error", "message": response.text, "details": []}
        error_class = _BY_STATUS.get(response.status_code, APIError)
        raise error_class(
            response.status_code, error["code"], error["message"], error.get("details")
        )


class Client:
    """A Quorum server, as one user (the token's) sees it.

    Calls that change state are retried on connection errors and 502/503/504; a submission is
    retried with the same ``Idempotency-Key``, so it is recorded exactly once.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )
        self.retries = retries
        self.backoff = backoff

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as error:
                if attempt == self.retries:
                    raise TransportError(f"{method} {path}: {error}") from error
            else:
                if response.status_code not in RETRY_STATUSES or attempt == self.retries:
                    _raise_for_error(response)
                    return response
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        return response.json() if response.content else None

    def _pages(self, path: str, **params: Any) -> Iterator[JSON]:
        """Every item of a paginated list, following ``next_cursor``."""
        cursor = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            page = self._json("GET", path, params=query)
            yield from page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    # -- accounts -----------------------------------------------------------------------------

    def me(self) -> JSON:
        result: JSON = self._json("GET", "/me")
        return result

    def create_user(self, email: str, *, password: str | None = None, **fields: Any) -> JSON:
        result: JSON = self._json(
            "POST", "/users", json={"email": email, "password": password, **fields}
        )
        return result

    def create_token(self, name: str = "") -> JSON:
        """A new token for yourself; ``["token"]`` is shown this once."""
        result: JSON = self._json("POST", "/tokens", json={"name": name})
        return result

    # -- projects -----------------------------------------------------------------------------

    def create_project(
        self,
        name: str,
        *,
        schema: Mapping[str, Any],
        instructions: str = "",
        policy: Mapping[str, Any] | None = None,
    ) -> JSON:
        body = {
            "name": name,
            "instructions": instructions,
            "schema": schema,
            "policy": policy or {},
        }
        result: JSON = self._json("POST", "/projects", json=body)
        return result

    def projects(self) -> Iterator[JSON]:
        return self._pages("/projects")

    def project(self, project_id: int) -> JSON:
        result: JSON = self._json("GET", f"/projects/{project_id}")
        return result

    def update_project(self, project_id: int, **changes: Any) -> JSON:
        result: JSON = self._json("PATCH", f"/projects/{project_id}", json=changes)
        return result

    def add_member(self, project_id: int, email: str, role: str) -> JSON:
        body = {"email": email, "role": role}
        result: JSON = self._json("POST", f"/projects/{project_id}/members", json=body)
        return result

    def members(self, project_id: int) -> Iterator[JSON]:
        return self._pages(f"/projects/{project_id}/members")

    def stats(self, project_id: int) -> JSON:
        result: JSON = self._json("GET", f"/projects/{project_id}/stats")
        return result

    # -- tasks --------------------------------------------------------------------------------

    def upload_tasks(
        self,
        project_id: int,
        tasks: Iterable[Mapping[str, Any]] | str | Path,
        *,
        on_conflict: str = "error",
    ) -> JSON:
        """Import tasks from an iterable of ``{data, gold?, external_id?}`` or a file path.

        An iterable is streamed as NDJSON; a file is sent as it is (its format from its name).
        All or nothing: a bad task raises Invalid with every problem in ``details``.
        """
        params = {"on_conflict": on_conflict}
        if isinstance(tasks, str | Path):
            path = Path(tasks)
            with path.open("rb") as file:
                return self._upload_file(project_id, path.name, file, params)
        body = b"".join(orjson.dumps(task) + b"\n" for task in tasks)
        headers = {"Content-Type": "application/x-ndjson"}
        result: JSON = self._json(
            "POST", f"/projects/{project_id}/tasks", content=body, headers=headers, params=params
        )
        return result

    def _upload_file(
        self, project_id: int, name: str, file: BinaryIO, params: dict[str, str]
    ) -> JSON:
        content_type = (
            "application/x-ndjson" if name.endswith((".ndjson", ".jsonl")) else "application/json"
        )
        result: JSON = self._json(
            "POST",
            f"/projects/{project_id}/tasks",
            content=file.read(),
            headers={"Content-Type": content_type},
            params=params,
        )
        return result

    def tasks(self, project_id: int, **filters: Any) -> Iterator[JSON]:
        return self._pages(f"/projects/{project_id}/tasks", **filters)

    def annotations(self, project_id: int, **filters: Any) -> Iterator[JSON]:
        return self._pages(f"/projects/{project_id}/annotations", **filters)

    # -- labelling ----------------------------------------------------------------------------

    def next(self, project_id: int) -> JSON | None:
        """Lease the next task, or None when nothing is due to you."""
        response = self._request("POST", f"/projects/{project_id}/next")
        return None if response.status_code == 204 else response.json()

    def submit(
        self,
        assignment_id: int,
        answers: Mapping[str, Any],
        *,
        duration_ms: int | None = None,
        idempotency_key: str | None = None,
    ) -> JSON:
        """Submit answers; retries reuse one Idempotency-Key, so the label is recorded once."""
        key = idempotency_key or str(uuid.uuid4())
        body = {"answers": dict(answers), "duration_ms": duration_ms}
        result: JSON = self._json(
            "POST",
            f"/assignments/{assignment_id}/submit",
            json=body,
            headers={"Idempotency-Key": key},
        )
        return result

    def skip(self, assignment_id: int) -> JSON:
        result: JSON = self._json("POST", f"/assignments/{assignment_id}/skip")
        return result
