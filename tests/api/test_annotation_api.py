"""The annotation loop through the REST API: next, submit, skip, leases, idempotency, secrecy."""

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import bindparam, func, null, select, update
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person

from quorum.db.models import Annotation, LedgerEntry, Role, Task, TaskStatus
from quorum.db.types import utcnow
from quorum.domain import assignments, pause, submits_pg
from quorum.domain.errors import Conflict


def _next(client: TestClient, project_id: int, who: Person) -> Any:
    reply = client.post(f"/api/v1/projects/{project_id}/next", headers=who.headers)
    assert reply.status_code in (200, 204), reply.text
    return reply.json() if reply.status_code == 200 else None


def _submit(
    client: TestClient, lease: Any, who: Person, answer: str = "yes", **headers: str
) -> Any:
    return client.post(
        f"/api/v1/assignments/{lease['assignment_id']}/submit",
        json={"answers": {"label": answer}, "duration_ms": 1200},
        headers={**who.headers, **headers},
    )


def _keys_named(name: str, value: Any) -> list[Any]:
    if isinstance(value, dict):
        found = [value[name]] if name in value else []
        return found + [x for v in value.values() for x in _keys_named(name, v)]
    if isinstance(value, list):
        return [x for v in value for x in _keys_named(name, v)]
    return []


def test_label_every_task_once(client: TestClient, make: Factory) -> None:
    owner, annotator = make.person("owner"), make.person("annotator")
    project = make.project(owner, members={Role.annotator: [annotator]})
    make.tasks(project, [{"data": {"n": i}} for i in range(3)])
    seen = []
    while (lease := _next(client, project.id, annotator)) is not None:
        assert set(lease) == {"assignment_id", "task", "expires_at"}
        assert set(lease["task"]) == {"id", "data"}
        assert _next(client, project.id, annotator) == lease  # a reload gets the same lease
        reply = _submit(client, lease, annotator)
        assert reply.status_code == 200, reply.text
        assert reply.json()["answers"] == {"label": "yes"}
        seen.append(lease["task"]["data"]["n"])
    assert seen == [0, 1, 2]


def test_overlap_spreads_a_task_over_annotators(client: TestClient, make: Factory) -> None:
    owner = make.person("owner")
    team = [make.person(f"a{i}") for i in range(3)]
    project = make.project(owner, policy={"overlap": 2}, members={Role.annotator: team})
    make.tasks(project, [{"data": {"n": 0}}])
    first, second = _next(client, project.id, team[0]), _next(client, project.id, team[1])
    assert first["task"]["id"] == second["task"]["id"]
    assert _next(client, project.id, team[2]) is None  # two live leases fill the overlap
    _submit(client, first, team[0])
    _submit(client, second, team[1])
    assert _next(client, project.id, team[0]) is None  # never the same task twice


def test_priority_then_nearest_completion_then_import_order(
    client: TestClient, make: Factory
) -> None:
    owner, a, b = make.person("owner"), make.person("a"), make.person("b")
    project = make.project(owner, policy={"overlap": 2}, members={Role.annotator: [a, b]})
    make.tasks(project, [{"data": {"n": 0}}, {"data": {"n": 1}}, {"data": {"n": 2}, "priority": 5}])
    first = _next(client, project.id, a)
    assert first["task"]["data"] == {"n": 2}
    _submit(client, first, a)
    assert _next(client, project.id, b)["task"]["data"] == {"n": 2}  # highest priority
    second = _next(client, project.id, a)
    assert second["task"]["data"] == {"n": 0}  # then import order
    _submit(client, second, a)


def test_submit_errors(client: TestClient, make: Factory) -> None:
    owner, annotator, other = make.person("owner"), make.person("annotator"), make.person("other")
    project = make.project(owner, members={Role.annotator: [annotator, other]})
    make.tasks(project, [{"data": {"n": 0}}, {"data": {"n": 1}}])
    lease = _next(client, project.id, annotator)
    invalid = _submit(client, lease, annotator, "maybe")
    assert invalid.status_code == 422
    assert invalid.json()["error"]["details"] == [
        {"field": "answers.label", "message": "must be one of ['yes', 'no']"}
    ]
    missing = client.post(
        f"/api/v1/assignments/{lease['assignment_id']}/submit",
        json={"answers": {}},
        headers=annotator.headers,
    )
    assert missing.json()["error"]["details"] == [{"field": "answers.label", "message": "required"}]
    not_theirs = _submit(client, lease, other)  # as if it did not exist: ids tell nothing
    nowhere = _submit(client, {"assignment_id": 10**9}, annotator)
    assert not_theirs.status_code == nowhere.status_code == 404
    message = f"no assignment {lease['assignment_id']} of yours"
    assert not_theirs.json()["error"]["message"] == message
    assert _submit(client, lease, annotator).status_code == 200
    again = _submit(client, lease, annotator)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize("learnt", [False, True], ids=["first-submit", "project-known"])
def test_idempotency_key(client: TestClient, make: Factory, learnt: bool) -> None:
    """Also once the server knows the project from an earlier submit (on PostgreSQL a submit
    then takes one statement, which must record the key too)."""
    owner, annotator = make.person("owner"), make.person("annotator")
    project = make.project(owner, members={Role.annotator: [annotator]})
    make.tasks(project, [{"data": {"n": i}} for i in range(3)])
    if learnt:
        assert _submit(client, _next(client, project.id, annotator), annotator).status_code == 200
    lease = _next(client, project.id, annotator)
    first = _submit(client, lease, annotator, **{"Idempotency-Key": "k-1"})
    retry = _submit(client, lease, annotator, **{"Idempotency-Key": "k-1"})
    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.json() == first.json()
    changed = _submit(client, lease, annotator, "no", **{"Idempotency-Key": "k-1"})
    assert changed.status_code == 422
    assert changed.json()["error"]["details"][0]["field"] == "Idempotency-Key"
    elsewhere = _submit(
        client, _next(client, project.id, annotator), annotator, **{"Idempotency-Key": "k-1"}
    )
    assert elsewhere.status_code == 422  # the same body, but for another assignment
    assert "another assignment" in elsewhere.json()["error"]["details"][0]["message"]
    labels = client.get(f"/api/v1/projects/{project.id}/stats", headers=owner.headers).json()[
        "labels"
    ]
    assert labels == 1 + learnt


def test_skip_gives_the_slot_to_someone_else(client: TestClient, make: Factory) -> None:
    owner, a, b = make.person("owner"), make.person("a"), make.person("b")
    project = make.project(owner, members={Role.annotator: [a, b]})
    make.tasks(project, [{"data": {"n": 0}}])
    lease = _next(client, project.id, a)
    assert _next(client, project.id, b) is None
    skipped = client.post(f"/api/v1/assignments/{lease['assignment_id']}/skip", headers=a.headers)
    assert skipped.json()["status"] == "skipped"
    assert _next(client, project.id, a) is None  # a skipped task is not offered again
    assert _next(client, project.id, b)["task"]["id"] == lease["task"]["id"]
    assert _submit(client, lease, a).status_code == 409


def test_expired_lease_frees_its_slot(client: TestClient, make: Factory, session: Session) -> None:
    owner, a, b = make.person("owner"), make.person("a"), make.person("b")
    project = make.project(owner, policy={"lease_seconds": 60}, members={Role.annotator: [a, b]})
    make.tasks(project, [{"data": {"n": 0}}, {"data": {"n": 1}}])
    now = utcnow()
    stale = assignments.lease(session, project, a.user, now=now - timedelta(minutes=5))
    assert stale is not None
    late = assignments.lease(session, project, b.user, now=now)  # reclaims a's expired lease
    assert late is not None and late.task.id == stale.task.id
    taken = _submit(client, {"assignment_id": stale.assignment.id}, a)
    assert taken.status_code == 409
    assert "expired" in taken.json()["error"]["message"]


def test_late_submit_is_accepted_while_the_slot_is_free(
    client: TestClient, make: Factory, session: Session
) -> None:
    owner, a = make.person("owner"), make.person("a")
    project = make.project(owner, policy={"lease_seconds": 60}, members={Role.annotator: [a]})
    make.tasks(project, [{"data": {"n": 0}}])
    stale = assignments.lease(session, project, a.user, now=utcnow() - timedelta(minutes=5))
    assert stale is not None
    assert _submit(client, {"assignment_id": stale.assignment.id}, a).status_code == 200


@pytest.mark.parametrize("way", ["api", "domain"])
def test_a_late_submit_cannot_take_a_slot_reserved_for_a_higher_tier(
    client: TestClient, make: Factory, session: Session, way: str
) -> None:
    owner = make.person("owner")
    a, b, junior = (make.person(n, tier=1) for n in ("a", "b", "junior"))
    senior = make.person("senior", tier=2)
    team = [a, b, junior, senior]
    policy = {"overlap": 2, "lease_seconds": 60}
    project = make.project(owner, policy=policy, members={Role.annotator: team})
    make.tasks(project, [{"data": {"n": 0}}])
    stale = assignments.lease(session, project, junior.user, now=utcnow() - timedelta(minutes=5))
    assert stale is not None
    task_id = stale.task.id
    for who in (a, b):  # the first lease reclaims the junior's: its slot goes back
        assert _submit(client, _next(client, project.id, who), who).status_code == 200
    # What the quality loop does to a full task that is still unsure after two extra labels
    # (adaptive_loop._raise): one more slot, reserved for a tier above everyone who labelled it.
    session.execute(
        update(Task).where(Task.id == task_id).values(overlap=3, min_tier=2, status=TaskStatus.open)
    )
    session.commit()

    if way == "api":
        refused = _submit(client, {"assignment_id": stale.assignment.id}, junior)
        assert refused.status_code == 409
        # No task id: where gold is hidden, annotators know tasks by handle only.
        assert refused.json()["error"]["message"] == (
            "the lease on this task expired and its next slot is now reserved for tier 2 or "
            "above; ask for the next task"
        )
    else:
        with pytest.raises(Conflict, match="reserved for tier 2 or above"):
            assignments.submit(session, stale.assignment.id, junior.user, {"label": "yes"})
        session.rollback()
    assert _next(client, project.id, senior)["task"]["id"] == task_id
    labellers = session.scalars(select(Annotation.user_id).where(Annotation.task_id == task_id))
    assert sorted(labellers) == sorted([a.user.id, b.user.id])


@pytest.mark.parametrize("way", ["api", "domain"])
def test_a_paused_annotators_freed_lease_takes_no_late_label(
    client: TestClient, make: Factory, session: Session, way: str
) -> None:
    owner, a, b = make.person("owner"), make.person("a"), make.person("b")
    policy = {"overlap": 1, "pay_per_task_cents": 10}
    project = make.project(owner, policy=policy, members={Role.annotator: [a, b]})
    make.tasks(project, [{"data": {"n": 0}}])
    lease = _next(client, project.id, a)
    pause.pause_by_owner(session, project.id, a.user.id, "spot check", by=owner.user)
    session.commit()

    if way == "api":
        refused = _submit(client, lease, a)
        assert refused.status_code == 409
        assert "you are paused in this project" in refused.json()["error"]["message"]
    else:
        with pytest.raises(Conflict, match="you are paused in this project"):
            assignments.submit(session, lease["assignment_id"], a.user, {"label": "yes"})
        session.rollback()
    assert session.scalar(select(func.count()).select_from(Annotation)) == 0
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 0
    assert _next(client, project.id, b)["task"]["id"] == lease["task"]["id"]  # the slot is free


@pytest.mark.parametrize("late", [False, True])
def test_a_removed_members_lease_takes_no_label(
    client: TestClient, make: Factory, session: Session, late: bool
) -> None:
    owner, a, b = make.person("owner"), make.person("a"), make.person("b")
    policy = {"overlap": 1, "pay_per_task_cents": 10, "lease_seconds": 60}
    project = make.project(owner, policy=policy, members={Role.annotator: [a, b]})
    make.tasks(project, [{"data": {"n": 0}}])
    if late:  # a lease past its time, not reclaimed yet: a late label needs a free slot
        stale = assignments.lease(session, project, a.user, now=utcnow() - timedelta(minutes=5))
        assert stale is not None
        lease = {"assignment_id": stale.assignment.id, "task": {"id": stale.task.id}}
    else:
        lease = _next(client, project.id, a)
    removed = client.delete(
        f"/api/v1/projects/{project.id}/members/{a.user.id}", headers=owner.headers
    )
    assert removed.status_code == 204

    refused = _submit(client, lease, a)
    assert refused.status_code == 409, refused.text
    assert "no longer a member of this project" in refused.json()["error"]["message"]
    assert session.scalar(select(func.count()).select_from(Annotation)) == 0
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 0
    assert _next(client, project.id, b)["task"]["id"] == lease["task"]["id"]  # the slot is free


def test_annotators_never_see_gold_or_others(client: TestClient, make: Factory) -> None:
    owner, a, b, outsider = (make.person(n) for n in ("owner", "a", "b", "outsider"))
    project = make.project(owner, policy={"overlap": 2}, members={Role.annotator: [a, b]})
    other = make.project(outsider)
    make.tasks(project, [{"data": {"n": i}, "gold": {"label": "no"}} for i in range(2)])
    make.tasks(other, [{"data": {"n": 9}}])
    replies = []
    lease = _next(client, project.id, a)
    replies.append(lease)
    replies.append(_submit(client, lease, a, "yes").json())
    replies.append(_next(client, project.id, b))
    for url in (
        f"/api/v1/projects/{project.id}",
        "/api/v1/projects",
        f"/api/v1/projects/{project.id}/tasks",
        f"/api/v1/projects/{project.id}/annotations",
        f"/api/v1/projects/{project.id}/stats",
        f"/api/v1/projects/{project.id}/members",
        f"/api/v1/tasks/{lease['task']['id']}",
        f"/api/v1/projects/{other.id}",
        f"/api/v1/projects/{other.id}/tasks",
    ):
        replies.append(client.get(url, headers=b.headers).json())
    assert not _keys_named("gold", replies)
    assert "'label': 'yes'" not in str(replies[2:])  # b never sees a's answer
    assert client.post(f"/api/v1/projects/{other.id}/next", headers=a.headers).status_code == 404


def test_a_submit_that_keeps_losing_races_is_a_503_to_send_again(
    client: TestClient, make: Factory, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the assignment changes between the submit's read and its write, again and again,
    nothing is wrong with the request: it is a 503 with Retry-After (which the SDK and the
    labeling page retry with the same key), not a 409 (which tells them to give the task up)."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("the read-then-write loop is PostgreSQL's; SQLite writes under its lock")
    owner, annotator = make.person("owner"), make.person("annotator")
    project = make.project(owner, members={Role.annotator: [annotator]})
    make.tasks(project, [{"data": {"n": 0}}])
    lease = _next(client, project.id, annotator)
    with monkeypatch.context() as patched:
        patched.setattr(submits_pg.HINTS, "known", lambda _: None)  # the read, then the write
        patched.setattr(submits_pg, "_write_after_read", changed_every_time)
        lost = _submit(client, lease, annotator, **{"Idempotency-Key": "k1"})
    assert lost.status_code == 503, lost.text
    assert lost.headers["Retry-After"] == "1"
    assert lost.json()["error"]["code"] == "contended"
    assert "try again" in lost.json()["error"]["message"]
    assert session.scalar(select(func.count()).select_from(Annotation)) == 0
    again = _submit(client, lease, annotator, **{"Idempotency-Key": "k1"})
    assert again.status_code == 200, again.text


def changed_every_time(_: bool) -> Any:
    """A write that finds the assignment changed since it was read (no target row)."""
    return select(null(), null(), null(), null()).where(bindparam("assignment_id").is_not(None))
