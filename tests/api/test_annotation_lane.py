"""The annotation lane answers next, submit and skip exactly as the framework's routes do.

Two apps share one database: one as served (the lane in front), one with the lane turned off.
The same script of calls runs on two identical projects, one through each app; every reply
must match in status, headers and body (ids and times aside, which differ between the two
projects). A spy behind the lane records which calls it handed to the framework: the ordinary
ones must not reach it, the unusual ones must.
"""

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send
from tests.conftest import Factory, Person

from quorum.app import create_app
from quorum.config import Settings
from quorum.db.engine import Database
from quorum.db.models import Role
from quorum.domain import assignments

TIMES = {"expires_at", "submitted_at", "leased_at", "finished_at"}
IDS = {"id", "assignment_id", "task_id"}


class Spy:
    """Records the paths of the requests that get past the lane."""

    seen: list[str]

    def __init__(self, app: ASGIApp, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append(scope["path"])
        await self.app(scope, receive, send)


@pytest.fixture
def clients(settings: Settings, database: Database) -> Iterator[tuple[TestClient, TestClient]]:
    plain = create_app(settings, database=database)
    plain.lane = None
    served = create_app(settings, database=database)
    assert served.lane is not None
    served.state.passed = []
    served.lane.app = Spy(served.lane.app, served.state.passed)
    with (
        TestClient(plain, raise_server_exceptions=False) as a,
        TestClient(served, raise_server_exceptions=False) as b,
    ):
        yield a, b


def _normal(value: Any) -> Any:
    """Ids and times replaced by their kind, digits in messages by '#'."""
    if isinstance(value, dict):
        return {
            k: ("<time>" if k in TIMES and v else "<id>" if k in IDS else _normal(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, str):
        return re.sub(r"[0-9]+", "#", value)
    return value


def _seen(reply: httpx.Response) -> tuple[int, dict[str, str], Any]:
    assert "server-timing" in reply.headers or reply.status_code == 500
    headers = {
        name: value
        for name, value in reply.headers.items()
        if name not in {"server-timing", "content-length"}
    }
    headers["has-length"] = str("content-length" in reply.headers)
    body = _normal(reply.json()) if reply.content else None
    return reply.status_code, headers, body


def _script(client: TestClient, project_id: int, people: dict[str, Person]) -> list[Any]:
    ann, other, outsider = people["annotator"], people["other"], people["outsider"]
    replies = []

    def call(path: str, who: Person | None = None, **kwargs: Any) -> dict[str, Any]:
        headers = {**(who.headers if who else {}), **kwargs.pop("headers", {})}
        reply = client.post(f"/api/v1{path}", headers=headers, **kwargs)
        replies.append(reply)
        return reply.json() if reply.status_code == 200 else {}

    lease = call(f"/projects/{project_id}/next", ann)
    call(f"/projects/{project_id}/next", ann)  # the same lease again
    submit = f"/assignments/{lease['assignment_id']}/submit"
    call(submit, ann, json={"answers": {"label": "maybe"}})  # refused by the schema
    call(submit, ann, content=b'{"answers": ', headers={"content-type": "application/json"})
    call(submit, ann, json={"answers": {"label": "yes"}, "extra": 1})
    call(
        submit,
        ann,
        content=b'{"answers": {"label": "yes"}}',
        headers={"content-type": "text/plain"},
    )
    call(submit, other, json={"answers": {"label": "yes"}})  # not the holder
    call(submit, ann, json={"answers": {"label": "yes"}}, headers={"Idempotency-Key": "x" * 201})
    keyed = {"Idempotency-Key": f"first-{project_id}"}  # keys are per user
    call(submit, ann, json={"answers": {"label": "yes"}, "duration_ms": 900}, headers=keyed)
    call(submit, ann, json={"answers": {"label": "yes"}, "duration_ms": 900}, headers=keyed)
    call(submit, ann, json={"answers": {"label": "no"}}, headers=keyed)  # same key, other body
    call(submit, ann, json={"answers": {"label": "no"}})  # already submitted
    call(f"/assignments/{lease['assignment_id']}/skip", ann)  # a submitted one
    second = call(f"/projects/{project_id}/next", ann)
    call(f"/assignments/{second['assignment_id']}/skip", ann)
    call(f"/assignments/{second['assignment_id']}/skip", ann)  # again: no change
    call(f"/projects/{project_id}/next", outsider)
    call(f"/projects/{project_id}/next", headers={"Authorization": "Bearer not-a-token"})
    call(f"/projects/{project_id}/next")
    call("/projects/0/next", ann)
    call(f"/projects/{2**63}/next", ann)
    call("/assignments/99999999/submit", ann, json={"answers": {"label": "yes"}})
    call(f"/projects/{project_id}/next", ann)  # both tasks held once: nothing due
    return replies


FALLBACKS = 7  # malformed JSON, extra field, text/plain, long key, no token, two bad ids


def test_the_lane_answers_as_the_framework(
    clients: tuple[TestClient, TestClient], make: Factory
) -> None:
    plain, served = clients
    people = {name: make.person(name) for name in ("owner", "annotator", "other", "outsider")}
    team = [people["annotator"], people["other"]]
    projects = [make.project(people["owner"], members={Role.annotator: team}) for _ in range(2)]
    for project in projects:
        make.tasks(project, [{"data": {"n": i}} for i in range(2)])

    expected = [_seen(r) for r in _script(plain, projects[0].id, people)]
    got = [_seen(r) for r in _script(served, projects[1].id, people)]

    assert [s for s, _, _ in got] == [
        200, 200, 422, 400, 422, 422, 404, 422, 200, 200, 422, 409, 409, 200, 200, 200,
        404, 401, 401, 422, 422, 404, 204,
    ]  # fmt: skip
    for step, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert have == want, f"call {step}"
    passed = served.app.state.passed  # type: ignore[attr-defined]
    assert len(passed) == FALLBACKS, passed


def test_a_crash_in_the_lane_is_the_usual_500(
    clients: tuple[TestClient, TestClient], make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, served = clients
    owner, annotator = make.person("owner"), make.person("annotator")
    project = make.project(owner, members={Role.annotator: [annotator]})

    async def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(assignments, "lease_by_token", broken)
    replies = [
        client.post(f"/api/v1/projects/{project.id}/next", headers=annotator.headers)
        for client in (plain, served)
    ]
    assert [_seen(reply) for reply in replies][0] == _seen(replies[1])
    assert replies[1].status_code == 500
    assert replies[1].json()["error"]["code"] == "server_error"
    assert served.app.state.passed == []  # type: ignore[attr-defined]
