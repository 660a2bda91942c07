"""Python SDK over the REST API.

    >>> from quorum.client import Client
    >>> client = Client("http://127.0.0.1:8000", token="qrm_...")  # doctest: +SKIP
    >>> project = client.create_project("Triage", schema={"questions": [...]})  # doctest: +SKIP

It covers accounts, projects and members, task upload (an iterable, or a JSON, NDJSON, CSV or
Parquet file), labelling (next, submit, skip), stats, exports (to a file, a Hugging Face dataset
directory, or a pandas DataFrame), vendor audits, payments and Label Studio imports; lists are
followed page by page; workforce profiles and the quality loop come from
``quorum.client_quality``. pandas is not a dependency of the SDK: ``export_dataframe`` imports it
when called (``pip install pandas``).

Errors mirror the API's:

QuorumError
   └── APIError(status, code, message, details)   from {"error": {...}}
       ├── Unauthorized 401, Forbidden 403, NotFound 404, Conflict 409, Invalid 422
       ├── BadRequest 400, PayloadTooLarge 413
       └── ServerError 5xx   always a server bug
   └── TransportError   the server could not be reached, even after retries
"""

import io
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import httpx
import orjson

from quorum.client_quality import QualityCalls

JSON = dict[str, Any]
RETRY_STATUSES = {502, 503, 504}
FILE_TYPES = {
    ".json": "application/json",
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/x-ndjson",
    ".csv": "text/csv",
    ".parquet": "application/vnd.apache.parquet",
}
DELIVERIES = ("hf", "dpo", "sft")


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


class Client(QualityCalls):
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
            for _, (_, file, _) in (kwargs.get("files") or {}).items():
                file.seek(0)  # a retry sends the whole file again
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

        An iterable is sent as NDJSON; a file (``.json``, ``.ndjson``/``.jsonl``, ``.csv`` or
        ``.parquet``) is uploaded as a multipart form, which the server spools to disk. All or
        nothing: a bad task raises Invalid with every problem (and its line) in ``details``.
        """
        params = {"on_conflict": on_conflict}
        url = f"/projects/{project_id}/tasks"
        if isinstance(tasks, str | Path):
            return self._upload(url, Path(tasks), params)
        body = b"".join(orjson.dumps(task) + b"\n" for task in tasks)
        headers = {"Content-Type": "application/x-ndjson"}
        result: JSON = self._json("POST", url, content=body, headers=headers, params=params)
        return result

    def _upload(self, url: str, path: Path, params: Mapping[str, Any] | None = None) -> JSON:
        """``path`` as the ``file`` field of a multipart form; the type from its extension."""
        content_type = FILE_TYPES.get(path.suffix.lower(), "application/octet-stream")
        with path.open("rb") as file:
            files = {"file": (path.name, file, content_type)}
            result: JSON = self._json("POST", url, files=files, params=dict(params or {}))
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

    # -- exports ------------------------------------------------------------------------------

    def export(
        self,
        project_id: int,
        path: str | Path,
        *,
        format: str = "jsonl",
        method: str = "ds",
        complete_only: bool = False,
        min_confidence: float | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        prompt_field: str | None = None,
    ) -> Path:
        """Download an export to ``path``: a file for jsonl, csv and parquet; for the
        deliveries hf, dpo and sft a new directory holding a Hugging Face dataset and its
        ``README.md`` card (``datasets.load_from_disk(path)``). ``prompt_field``: for dpo and
        sft, the task data field holding the prompt."""
        params = _export_params(format, method, complete_only, min_confidence, since, until)
        if prompt_field is not None:
            params["prompt_field"] = prompt_field
        target = Path(path)
        if format not in DELIVERIES:
            with target.open("wb") as sink:
                self._download(f"/projects/{project_id}/export", params, sink)
            return target
        with tempfile.TemporaryFile() as archive:
            self._download(f"/projects/{project_id}/export", params, archive)
            archive.seek(0)
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(target)
        return target

    def export_dataframe(
        self, project_id: int, *, method: str = "ds", complete_only: bool = False
    ) -> Any:
        """The export as a pandas DataFrame, one row per task (read from Parquet, so answers
        keep their types). Needs pandas, which the SDK imports only here."""
        import pyarrow.parquet as pq

        params = _export_params("parquet", method, complete_only, None, None, None)
        buffer = io.BytesIO()
        self._download(f"/projects/{project_id}/export", params, buffer)
        buffer.seek(0)
        return pq.read_table(buffer).to_pandas()  # a pandas.DataFrame (untyped: pandas is optional)

    def _download(self, path: str, params: Mapping[str, Any], sink: IO[bytes]) -> None:
        """Stream a GET into ``sink``; retried from the start like any other call."""
        for attempt in range(self.retries + 1):
            sink.seek(0)
            sink.truncate()
            try:
                with self._http.stream("GET", path, params=dict(params)) as response:
                    if response.status_code in RETRY_STATUSES and attempt < self.retries:
                        raise httpx.RemoteProtocolError("retry", request=response.request)
                    if response.is_error:
                        response.read()
                        _raise_for_error(response)
                    for chunk in response.iter_bytes():
                        sink.write(chunk)
                return
            except httpx.TransportError as error:
                if attempt == self.retries:
                    raise TransportError(f"GET {path}: {error}") from error
            time.sleep(self.backoff * 2**attempt)

    # -- vendor audits ------------------------------------------------------------------------

    def deliver_vendor_labels(
        self,
        project_id: int,
        vendor: str,
        labels: Iterable[Mapping[str, Any]] | str | Path,
        *,
        price_cents_per_label: int | None = None,
    ) -> JSON:
        """A vendor's labels, ``{external_id, answers}`` each, from an iterable or a file
        (JSON, NDJSON, CSV, Parquet); all or nothing (docs/audits.md)."""
        url = f"/projects/{project_id}/audit/deliveries"
        params: dict[str, Any] = {"vendor": vendor}
        if price_cents_per_label is not None:
            params["price_cents_per_label"] = price_cents_per_label
        if isinstance(labels, str | Path):
            return self._upload(url, Path(labels), params)
        body = b"".join(orjson.dumps(row) + b"\n" for row in labels)
        headers = {"Content-Type": "application/x-ndjson"}
        result: JSON = self._json("POST", url, content=body, headers=headers, params=params)
        return result

    def vendors(self, project_id: int) -> list[JSON]:
        result: list[JSON] = self._json("GET", f"/projects/{project_id}/audit/vendors")
        return result

    def draw_audit_sample(
        self,
        project_id: int,
        *,
        width: float = 0.1,
        expected_accuracy: float = 0.5,
        question: str | None = None,
        seed: int | None = None,
    ) -> list[JSON]:
        """Draw (or top up) each vendor's stratified sample for a 95% interval at most
        ``width`` wide; the sampled tasks go to the front of your experts' queue."""
        body = {"width": width, "expected_accuracy": expected_accuracy, "question": question}
        if seed is not None:
            body["seed"] = seed
        result: list[JSON] = self._json("POST", f"/projects/{project_id}/audit/sample", json=body)
        return result

    def audit_report(self, project_id: int, *, method: str = "ds") -> JSON:
        """Each vendor against your experts' consensus, best first."""
        params = {"method": method}
        result: JSON = self._json("GET", f"/projects/{project_id}/audit", params=params)
        return result

    # -- payments -----------------------------------------------------------------------------

    def spend(self, project_id: int) -> JSON:
        """Budget, spend, committed work, forecast to completion, cost per label."""
        result: JSON = self._json("GET", f"/projects/{project_id}/spend")
        return result

    def ledger(self, project_id: int) -> Iterator[JSON]:
        """Every ledger entry charged to the project, oldest first."""
        return self._pages(f"/projects/{project_id}/ledger")

    def grant(
        self, project_id: int, email: str, amount_cents: int, reason: str, *, kind: str = "bonus"
    ) -> JSON:
        """A bonus (positive) or an adjustment (either sign) for a member of the project."""
        body = {"email": email, "amount_cents": amount_cents, "reason": reason, "kind": kind}
        result: JSON = self._json("POST", f"/projects/{project_id}/grants", json=body)
        return result

    def statement(
        self,
        user_id: int | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> JSON:
        """Your statement (or, as an admin, someone else's): entries, totals, balances."""
        params = {k: v.isoformat() for k, v in {"since": since, "until": until}.items() if v}
        path = "/me/statement" if user_id is None else f"/users/{user_id}/statement"
        result: JSON = self._json("GET", path, params=params)
        return result

    def pay_out(self, period: str) -> list[JSON]:
        """Pay everyone what became payable before the end of the month ``YYYY-MM`` (admins)."""
        result: list[JSON] = self._json("POST", "/payouts", json={"period": period})
        return result

    def payout_csv(self, period: str) -> str:
        """The payout file of a month (admins)."""
        return self._request("GET", "/payouts", params={"period": period}).text

    # -- moving over --------------------------------------------------------------------------

    def import_label_studio(self, project_id: int, path: str | Path) -> JSON:
        """A Label Studio JSON export with its annotations, all or nothing."""
        return self._upload(f"/projects/{project_id}/tasks/label-studio", Path(path))


def _export_params(
    format: str,
    method: str,
    complete_only: bool,
    min_confidence: float | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, Any]:
    params: dict[str, Any] = {"format": format, "method": method}
    if complete_only:
        params["complete_only"] = "true"
    if min_confidence is not None:
        params["min_confidence"] = min_confidence
    for name, moment in (("since", since), ("until", until)):
        if moment is not None:
            params[name] = moment.isoformat()
    return params
