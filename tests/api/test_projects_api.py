"""Projects, members and accounts through the REST API."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import CHOICE_SCHEMA, Factory

from quorum.db.models import Role

ALL_KINDS: dict[str, Any] = {
    "questions": [
        {"name": "topic", "kind": "choice", "options": ["med", "law"]},
        {"name": "tags", "kind": "multi_choice", "options": ["a", "b", "c"], "required": False},
        {"name": "accuracy", "kind": "rating", "min": 1, "max": 5},
        {"name": "better", "kind": "preference", "options": ["left", "right"], "ties": True},
        {"name": "order", "kind": "ranking", "field": "candidates"},
        {"name": "entities", "kind": "spans", "field": "text", "labels": ["drug", "dose"]},
        {"name": "rewrite", "kind": "text", "min_chars": 5, "required": False},
    ]
}


def test_create_project_with_every_question_kind(client: TestClient, make: Factory) -> None:
    owner = make.person("owner")
    body = {
        "name": "All kinds",
        "instructions": "Be careful.",
        "schema": ALL_KINDS,
        "policy": {"overlap": 3},
    }
    reply = client.post("/api/v1/projects", json=body, headers=owner.headers)
    assert reply.status_code == 201, reply.text
    project = reply.json()
    assert [q["kind"] for q in project["schema"]["questions"]] == [
        "choice",
        "multi_choice",
        "rating",
        "preference",
        "ranking",
        "spans",
        "text",
    ]
    assert project["policy"]["overlap"] == 3
    assert project["policy"]["lease_seconds"] == 600  # defaults filled in
    assert project["role"] == "owner"
    again = client.get(f"/api/v1/projects/{project['id']}", headers=owner.headers)
    assert again.json()["schema"] == project["schema"]


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ({"questions": []}, "schema.questions"),
        (
            {"questions": [{"name": "q", "kind": "choice", "options": ["one"]}]},
            "schema.questions[0]",
        ),
        (
            {"questions": [{"name": "q", "kind": "rating", "min": 5, "max": 1}]},
            "schema.questions[0]",
        ),
        ({"questions": [{"name": "q", "kind": "nope"}]}, "schema.questions[0]"),
        ({"questions": [{"name": "bad name", "kind": "text"}]}, "schema.questions[0]"),
        ({"questions": [{"name": "q", "kind": "text"}, {"name": "q", "kind": "text"}]}, "schema"),
        (
            {"questions": [{"name": "q", "kind": "preference", "options": ["a", "a"]}]},
            "schema.questions[0]",
        ),
    ],
)
def test_invalid_schema_is_422_naming_the_field(
    client: TestClient, make: Factory, schema: dict[str, Any], field: str
) -> None:
    owner = make.person("owner")
    reply = client.post(
        "/api/v1/projects", json={"name": "x", "schema": schema}, headers=owner.headers
    )
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert error["code"] == "validation_error"
    assert any(d["field"].startswith(field) for d in error["details"]), error


def test_invalid_policy_is_422(client: TestClient, make: Factory) -> None:
    owner = make.person("owner")
    for policy, field in [
        ({"overlap": 0}, "policy.overlap"),
        ({"overlap": 3, "max_overlap": 2}, "policy"),
        ({"overlpa": 3}, "policy.overlpa"),
        ({"gold_rate": 1.5}, "policy.gold_rate"),
    ]:
        body = {"name": "x", "schema": CHOICE_SCHEMA, "policy": policy}
        reply = client.post("/api/v1/projects", json=body, headers=owner.headers)
        assert reply.status_code == 422, policy
        assert reply.json()["error"]["details"][0]["field"].startswith(field)


def test_requests_without_a_valid_token_are_401(client: TestClient, make: Factory) -> None:
    assert client.get("/api/v1/projects").status_code == 401
    bad = client.get("/api/v1/projects", headers={"Authorization": "Bearer qrm_wrong"})
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "unauthorized"
    assert client.get("/api/v1/me", headers={"Authorization": "Basic abc"}).status_code == 401


def test_revoked_token_stops_working(client: TestClient, make: Factory) -> None:
    person = make.person()
    created = client.post("/api/v1/tokens", json={"name": "laptop"}, headers=person.headers)
    assert created.status_code == 201
    token = created.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=headers).json()["email"] == person.user.email
    listed = client.get("/api/v1/tokens", headers=person.headers).json()
    assert all("token" not in t for t in listed)
    revoked = client.delete(f"/api/v1/tokens/{created.json()['id']}", headers=person.headers)
    assert revoked.json()["revoked_at"] is not None
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_only_admins_create_users(client: TestClient, make: Factory) -> None:
    admin, person = make.person("admin", admin=True), make.person()
    body = {"email": "new@example.com", "password": "long enough"}
    assert client.post("/api/v1/users", json=body, headers=person.headers).status_code == 403
    assert client.post("/api/v1/users", json=body, headers=admin.headers).status_code == 201
    assert client.post("/api/v1/users", json=body, headers=admin.headers).status_code == 409


def test_projects_are_paginated_and_private(client: TestClient, make: Factory) -> None:
    owner, stranger = make.person("owner"), make.person("stranger")
    ids = [make.project(owner).id for _ in range(3)]
    first = client.get("/api/v1/projects?limit=2", headers=owner.headers).json()
    assert [p["id"] for p in first["items"]] == ids[:2]
    second = client.get(
        f"/api/v1/projects?limit=2&cursor={first['next_cursor']}", headers=owner.headers
    )
    assert [p["id"] for p in second.json()["items"]] == ids[2:]
    assert second.json()["next_cursor"] is None
    assert client.get("/api/v1/projects", headers=stranger.headers).json()["items"] == []
    hidden = client.get(f"/api/v1/projects/{ids[0]}", headers=stranger.headers)
    assert hidden.status_code == 404
    assert client.get("/api/v1/projects?cursor=abc", headers=owner.headers).status_code == 422


def test_members_and_roles(client: TestClient, make: Factory) -> None:
    owner, annotator = make.person("owner"), make.person("annotator")
    project = make.project(owner)
    url = f"/api/v1/projects/{project.id}/members"
    added = client.post(
        url, json={"email": annotator.user.email, "role": "annotator"}, headers=owner.headers
    )
    assert added.status_code == 201
    assert added.json()["role"] == "annotator"
    changed = client.post(
        url, json={"email": annotator.user.email, "role": "reviewer"}, headers=owner.headers
    )
    assert changed.status_code == 200
    assert changed.json()["role"] == "reviewer"
    missing = client.post(
        url, json={"email": "nobody@example.com", "role": "annotator"}, headers=owner.headers
    )
    assert missing.status_code == 404
    bad_role = client.post(
        url, json={"email": annotator.user.email, "role": "boss"}, headers=owner.headers
    )
    assert bad_role.status_code == 422
    listed = client.get(url, headers=owner.headers).json()["items"]
    assert {m["role"] for m in listed} == {"owner", "reviewer"}
    forbidden = client.post(
        url, json={"email": owner.user.email, "role": "annotator"}, headers=annotator.headers
    )
    assert forbidden.status_code == 403
    last_owner = client.delete(f"{url}/{owner.user.id}", headers=owner.headers)
    assert last_owner.status_code == 409
    assert client.delete(f"{url}/{annotator.user.id}", headers=owner.headers).status_code == 204


def test_update_policy_recomputes_task_status(client: TestClient, make: Factory) -> None:
    owner, annotator = make.person("owner"), make.person("annotator")
    project = make.project(owner, members={Role.annotator: [annotator]})
    make.tasks(project, [{"data": {"n": 1}}])
    lease = client.post(f"/api/v1/projects/{project.id}/next", headers=annotator.headers).json()
    client.post(
        f"/api/v1/assignments/{lease['assignment_id']}/submit",
        json={"answers": {"label": "yes"}},
        headers=annotator.headers,
    )
    tasks_url = f"/api/v1/projects/{project.id}/tasks"
    assert client.get(tasks_url, headers=owner.headers).json()["items"][0]["status"] == "complete"
    reply = client.patch(
        f"/api/v1/projects/{project.id}", json={"policy": {"overlap": 2}}, headers=owner.headers
    )
    assert reply.status_code == 200
    task = client.get(tasks_url, headers=owner.headers).json()["items"][0]
    assert (task["status"], task["overlap"]) == ("open", 2)
    schema_change = client.patch(
        f"/api/v1/projects/{project.id}", json={"schema": CHOICE_SCHEMA}, headers=owner.headers
    )
    assert schema_change.status_code == 409
    by_annotator = client.patch(
        f"/api/v1/projects/{project.id}", json={"name": "x"}, headers=annotator.headers
    )
    assert by_annotator.status_code == 403


def test_a_policy_change_keeps_the_keys_it_does_not_name(client: TestClient, make: Factory) -> None:
    """PATCH merges the policy (RFC 7386, one level): keys not given stay, a null clears an
    optional key, and the merged policy is checked as a whole."""
    owner = make.person("owner")
    project = make.project(
        owner, policy={"overlap": 2, "max_overlap": 4, "gold_rate": 0.1, "budget_cents": 500}
    )
    url = f"/api/v1/projects/{project.id}"

    def patch(policy: dict[str, Any]) -> Any:
        return client.patch(url, json={"policy": policy}, headers=owner.headers)

    changed = patch({"pay_per_task_cents": 40}).json()["policy"]
    assert (changed["overlap"], changed["max_overlap"], changed["gold_rate"]) == (2, 4, 0.1)
    assert (changed["pay_per_task_cents"], changed["budget_cents"]) == (40, 500)
    cleared = patch({"budget_cents": None}).json()["policy"]
    assert (cleared["budget_cents"], cleared["gold_rate"], cleared["max_overlap"]) == (None, 0.1, 4)
    refused = patch({"overlap": 5})  # above the max_overlap it keeps
    assert refused.status_code == 422, refused.text
    assert "max_overlap must be at least overlap" in refused.json()["error"]["message"]
    assert client.get(url, headers=owner.headers).json()["policy"]["overlap"] == 2
    assert patch({"overlap": None}).status_code == 422  # only optional keys may be cleared


def test_stats_count_progress(client: TestClient, make: Factory) -> None:
    owner, annotator = make.person("owner"), make.person("annotator")
    project = make.project(owner, members={Role.annotator: [annotator]})
    make.tasks(
        project,
        [{"data": {"n": i}, "gold": {"label": "yes"} if i == 0 else None} for i in range(3)],
    )
    lease = client.post(f"/api/v1/projects/{project.id}/next", headers=annotator.headers).json()
    client.post(
        f"/api/v1/assignments/{lease['assignment_id']}/submit",
        json={"answers": {"label": "no"}},
        headers=annotator.headers,
    )
    client.post(f"/api/v1/projects/{project.id}/next", headers=annotator.headers)
    stats = client.get(f"/api/v1/projects/{project.id}/stats", headers=owner.headers).json()
    assert stats | {"annotators": None, "agreement": None} == {
        "tasks": 3,
        "complete": 1,
        "open": 2,
        "gold_tasks": 1,
        "labels": 1,
        "live_leases": 1,
        "work_tasks": 3,  # gold that is not hidden is work like any task
        "work_complete": 1,
        "progress": pytest.approx(1 / 3),
        "annotators": None,
        "agreement": None,
    }
    (figures,) = stats["annotators"]
    assert (figures["annotator"], figures["labels"], figures["paused"]) == (
        annotator.user.pseudonym,
        1,
        False,
    )
    assert figures["trust"]["checks"] == 0  # the loop grades gold off the request path
    (agreement,) = stats["agreement"]
    assert (agreement["question"], agreement["value"], agreement["tasks"]) == ("label", None, 0)
    assert agreement["note"] == "no task has two labels yet"
    assert (
        client.get(f"/api/v1/projects/{project.id}/stats", headers=annotator.headers).status_code
        == 403
    )


@pytest.mark.parametrize("qualifying", [False, True])
def test_progress_counts_the_work_not_the_gold_checks(
    client: TestClient, make: Factory, qualifying: bool
) -> None:
    """Hidden checks come only beside real work, so one can stay open for good once the work
    is done; progress still reaches 100% (tests/web/test_requester.py: the pages)."""
    owner, annotator = make.person("owner"), make.person("annotator")
    policy: dict[str, object] = {"overlap": 1, "gold_rate": 0.0001}
    if qualifying:
        policy["qualification"] = {"tasks": 1, "pass_rate": 0.0}
    project = make.project(owner, policy=policy, members={Role.annotator: [annotator]})
    gold = [{"data": {"n": -i}, "gold": {"label": "yes"}} for i in range(3)]
    make.tasks(project, [*gold, *({"data": {"n": i}} for i in range(2))])
    while True:
        lease = client.post(f"/api/v1/projects/{project.id}/next", headers=annotator.headers)
        if lease.status_code == 204:
            break
        client.post(
            f"/api/v1/assignments/{lease.json()['assignment_id']}/submit",
            json={"answers": {"label": "yes"}},
            headers=annotator.headers,
        ).raise_for_status()
    stats = client.get(f"/api/v1/projects/{project.id}/stats", headers=owner.headers).json()
    assert (stats["tasks"], stats["gold_tasks"]) == (5, 3)
    assert stats["complete"] == (3 if qualifying else 2)  # the checks stayed open
    assert (stats["work_tasks"], stats["work_complete"], stats["progress"]) == (2, 2, 1.0)
