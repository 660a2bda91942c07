"""The labeling workbench on the server side: every kind renders its keys, submissions are
idempotent, and the plain form works without JavaScript."""

import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from tests.api.test_annotation_api import changed_every_time
from tests.conftest import Factory, Person
from tests.web.conftest import Visitor

from quorum.db.models import Annotation, Project, Role
from quorum.db.types import utcnow
from quorum.domain import assignments, submits_pg
from quorum.domain.demo import demo_specs

Visit = Callable[[Person | None], Visitor]
SPECS = {spec["schema"]["questions"][0]["kind"]: spec for spec in demo_specs()}
KEYS = {
    "choice": ["1", "2", "3", "4"],
    "multi_choice": ["1", "7"],
    "rating": ["1", "5"],
    "preference": ["A", "B", "T"],
    "ranking": [],
    "spans": ["1", "2", "3"],
    "text": [],
}


def _project(make: Factory, kind: str, annotator: Person, tasks: int = 1) -> Project:
    spec = SPECS[kind]
    project = make.project(
        make.person("owner"), spec["schema"], spec["policy"], members={Role.annotator: [annotator]}
    )
    make.tasks(project, [{"data": t["data"]} for t in spec["tasks"][:tasks]])
    return project


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_every_kind_renders_with_its_keys(visit: Visit, make: Factory, kind: str) -> None:
    annotator = make.person("ann")
    project = _project(make, kind, annotator)
    visitor = visit(annotator)
    page = visitor.get(f"/projects/{project.id}/label")
    assert page.status_code == 200 and "Ctrl</kbd>+<kbd>Enter" in page.text
    reply = visitor.fetch(f"/projects/{project.id}/label/next")
    assert reply.status_code == 200, reply.text
    html = reply.json()["html"]
    assert f'data-kind="{kind}"' in html
    for key in KEYS[kind]:
        assert f"<kbd>{key}</kbd>" in html, key
    assert 'dir="auto"' in html
    full = visitor.get(reply.json()["url"])
    assert full.status_code == 200 and 'id="answer-form"' in full.text


def _lease(visitor: Visitor, project: Project) -> dict[str, Any]:
    reply = visitor.fetch(f"/projects/{project.id}/label/next")
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()
    return data


def test_a_retry_with_the_same_key_stores_one_label(
    visit: Visit, make: Factory, session: Session
) -> None:
    annotator = make.person("ann")
    project = _project(make, "choice", annotator, tasks=2)
    visitor = visit(annotator)
    lease = _lease(visitor, project)
    url = f"/assignments/{lease['assignment_id']}/submit"
    body = {"answers": {"urgency": "urgent"}, "duration_ms": 4200}
    first = visitor.fetch(url, body, {"Idempotency-Key": "try-1"})
    again = visitor.fetch(url, body, {"Idempotency-Key": "try-1"})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    changed = visitor.fetch(url, {**body, "duration_ms": 1}, {"Idempotency-Key": "try-1"})
    assert changed.status_code == 422
    assert changed.json()["error"]["details"][0]["field"] == "Idempotency-Key"
    stored = session.scalars(select(Annotation).where(Annotation.project_id == project.id)).all()
    assert [(a.answers, a.duration_ms) for a in stored] == [({"urgency": "urgent"}, 4200)]


def test_a_submit_that_keeps_losing_races_comes_back_as_a_503(
    visit: Visit, make: Factory, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's script retries a 503 with the same key (label.js ``deliver``); a 409 would
    make it give the task up and hide the lease's countdown."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("the read-then-write loop is PostgreSQL's; SQLite writes under its lock")
    annotator = make.person("ann")
    visitor = visit(annotator)
    lease = _lease(visitor, _project(make, "choice", annotator))
    url = f"/assignments/{lease['assignment_id']}/submit"
    body = {"answers": {"urgency": "urgent"}, "duration_ms": 4200}
    with monkeypatch.context() as patched:
        patched.setattr(submits_pg.HINTS, "known", lambda _: None)
        patched.setattr(submits_pg, "_write_after_read", changed_every_time)
        lost = visitor.fetch(url, body, {"Idempotency-Key": "try-1"})
    assert (lost.status_code, lost.headers["Retry-After"]) == (503, "1")
    assert lost.json()["error"]["code"] == "contended"
    assert visitor.fetch(url, body, {"Idempotency-Key": "try-1"}).status_code == 200


def test_invalid_answers_come_back_as_problems(visit: Visit, make: Factory) -> None:
    annotator = make.person("ann")
    project = _project(make, "text", annotator)
    visitor = visit(annotator)
    lease = _lease(visitor, project)
    reply = visitor.fetch(
        f"/assignments/{lease['assignment_id']}/submit", {"answers": {"reference_answer": "short"}}
    )
    assert reply.status_code == 422
    problem = reply.json()["error"]["details"][0]
    assert problem["field"] == "answers.reference_answer"
    assert "at least 40 characters" in problem["message"]


def test_without_javascript_the_form_submits_and_moves_on(
    visit: Visit, make: Factory, session: Session
) -> None:
    annotator = make.person("ann")
    project = _project(make, "choice", annotator, tasks=2)
    visitor = visit(annotator)
    start = visitor.form(f"/projects/{project.id}/label/next")
    assert start.status_code == 303
    page = visitor.get(start.headers["location"])
    action = re.search(r'action="(/assignments/\d+/submit)"', page.text)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
    assert action and key
    missing = visitor.form(action.group(1), {"idempotency_key": key.group(1)})
    assert missing.status_code == 422 and "required" in missing.text
    saved = visitor.form(action.group(1), {"idempotency_key": key.group(1), "urgency": "routine"})
    assert saved.status_code == 303
    assert re.fullmatch(rf"/projects/{project.id}/label/\d+", saved.headers["location"])
    assert saved.headers["location"] != start.headers["location"]
    answers = session.scalars(select(Annotation.answers).where(Annotation.project_id == project.id))
    assert list(answers) == [{"urgency": "routine"}]


@pytest.mark.parametrize(
    ("kind", "fields", "expected"),
    [
        (
            "multi_choice",
            {"clause_types": ["termination", "warranty"]},
            ["termination", "warranty"],
        ),
        ("rating", {"accuracy": "4"}, 4),
        (
            "ranking",
            {
                "quality_order.rank.0": "2",
                "quality_order.rank.1": "1",
                "quality_order.rank.2": "3",
                "quality_order.rank.3": "4",
            },
            [1, 0, 2, 3],
        ),
        (
            "spans",
            {"entities": json.dumps([{"start": 21, "end": 36, "label": "condition"}])},
            [{"start": 21, "end": 36, "label": "condition"}],
        ),
    ],
)
def test_the_plain_form_reads_every_kind(
    visit: Visit, make: Factory, session: Session, kind: str, fields: dict[str, Any], expected: Any
) -> None:
    annotator = make.person("ann")
    project = _project(make, kind, annotator)
    visitor = visit(annotator)
    lease = _lease(visitor, project)
    reply = visitor.form(f"/assignments/{lease['assignment_id']}/submit", fields)
    assert reply.status_code == 303, reply.text
    answers = session.scalar(select(Annotation.answers).where(Annotation.project_id == project.id))
    assert answers == {SPECS[kind]["schema"]["questions"][0]["name"]: expected}


def test_skip_gives_the_task_back_and_moves_on(visit: Visit, make: Factory) -> None:
    annotator = make.person("ann")
    project = _project(make, "choice", annotator, tasks=2)
    visitor = visit(annotator)
    first = _lease(visitor, project)
    assert visitor.fetch(f"/assignments/{first['assignment_id']}/skip").json() == {
        "skipped": first["assignment_id"]
    }
    second = _lease(visitor, project)
    assert second["assignment_id"] != first["assignment_id"]
    assert visitor.form(f"/assignments/{second['assignment_id']}/skip").status_code == 303
    done = _lease(visitor, project)
    assert done["assignment_id"] is None and "Nothing to label right now" in done["html"]


def test_an_expired_lease_still_renders_and_a_free_slot_still_takes_the_answer(
    visit: Visit, make: Factory, session: Session
) -> None:
    annotator = make.person("ann")
    project = _project(make, "choice", annotator)
    lease = assignments.lease(session, project, annotator.user, now=utcnow() - timedelta(hours=1))
    assert lease is not None
    visitor = visit(annotator)
    page = visitor.get(f"/projects/{project.id}/label/{lease.assignment.id}")
    assert 'data-seconds-left="0"' in page.text
    reply = visitor.fetch(
        f"/assignments/{lease.assignment.id}/submit", {"answers": {"urgency": "urgent"}}
    )
    assert reply.status_code == 200, reply.text


def test_a_finished_assignment_sends_you_on(visit: Visit, make: Factory) -> None:
    annotator = make.person("ann")
    project = _project(make, "choice", annotator)
    visitor = visit(annotator)
    lease = _lease(visitor, project)
    visitor.fetch(
        f"/assignments/{lease['assignment_id']}/submit", {"answers": {"urgency": "urgent"}}
    )
    reply = visitor.get(lease["url"])
    assert reply.status_code == 303 and reply.headers["location"] == f"/projects/{project.id}/label"
    assert "submitted" in visitor.get(reply.headers["location"]).text


@pytest.mark.parametrize(
    ("low", "high", "keys", "keyed"),
    [
        (1, 5, {"1": 1, "5": 5}, 5),
        (0, 9, {"0": 0, "9": 9}, 10),
        (1, 10, {"1": 1, "9": 9, "0": 10}, 10),
        (-2, 2, {"1": -2, "5": 2}, 5),
        (0, 20, {"1": 0, "9": 8}, 9),  # a long scale: the first nine values by position
    ],
)
def test_rating_keys(low: int, high: int, keys: dict[str, int], keyed: int) -> None:
    from quorum.domain.questions import RatingQuestion
    from quorum.web.questions import view

    question = RatingQuestion(name="r", kind="rating", min=low, max=high)
    options = {o.key: o.value for o in view(question, {}).options if o.key is not None}
    assert {key: options[key] for key in keys} == keys
    assert len(options) == keyed
