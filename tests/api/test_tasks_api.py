"""Importing and reading tasks through the REST API: all or nothing, errors with their line."""

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.conftest import Factory

from quorum.app import create_app
from quorum.config import Settings
from quorum.db.engine import Database
from quorum.db.models import Role

SPANS_SCHEMA = {
    "questions": [
        {"name": "label", "kind": "choice", "options": ["yes", "no"]},
        {"name": "ents", "kind": "spans", "field": "text", "labels": ["drug"], "required": False},
    ]
}


def _ndjson(rows: list[object]) -> bytes:
    return b"\n".join(orjson.dumps(r) for r in rows) + b"\n"


def _count(client: TestClient, project_id: int, headers: dict[str, str]) -> int:
    return len(
        client.get(f"/api/v1/projects/{project_id}/tasks?limit=1000", headers=headers).json()[
            "items"
        ]
    )


def test_import_json_array_and_ndjson(client: TestClient, make: Factory) -> None:
    owner = make.person("owner")
    project = make.project(owner, SPANS_SCHEMA)
    url = f"/api/v1/projects/{project.id}/tasks"
    array = [{"data": {"text": "aspirin 100 mg"}, "external_id": "t1", "gold": {"label": "yes"}}]
    reply = client.post(url, json=array, headers=owner.headers)
    assert (reply.status_code, reply.json()) == (201, {"created": 1, "skipped": 0})
    lines = _ndjson(
        [{"data": {"text": f"note {i}"}, "external_id": f"n{i}", "priority": i} for i in range(5)]
    )
    reply = client.post(
        url, content=lines, headers={**owner.headers, "Content-Type": "application/x-ndjson"}
    )
    assert (reply.status_code, reply.json()) == (201, {"created": 5, "skipped": 0})
    tasks = client.get(url, headers=owner.headers).json()["items"]
    assert tasks[0]["gold"] == {"label": "yes"}
    assert [t["external_id"] for t in tasks] == ["t1", "n0", "n1", "n2", "n3", "n4"]


def test_bad_line_in_the_middle_rejects_everything(client: TestClient, make: Factory) -> None:
    owner = make.person("owner")
    project = make.project(owner, SPANS_SCHEMA)
    rows: list[object] = [{"data": {"text": f"note {i}"}} for i in range(10_000)]
    body = bytearray(_ndjson(rows))
    lines = body.split(b"\n")
    lines[4999] = b'{"data": {"text": "broken"'  # line 5000
    lines[7000] = orjson.dumps({"data": {"text": "x"}, "gold": {"label": "maybe"}})  # line 7001
    reply = client.post(
        f"/api/v1/projects/{project.id}/tasks",
        content=b"\n".join(lines),
        headers={**owner.headers, "Content-Type": "application/x-ndjson"},
    )
    assert reply.status_code == 422
    details = reply.json()["error"]["details"]
    assert [(d["line"], d["field"]) for d in details] == [(5000, "line"), (7001, "gold.label")]
    assert "line 5000" in reply.json()["error"]["message"]
    assert _count(client, project.id, owner.headers) == 0


@pytest.mark.parametrize(
    ("task", "field"),
    [
        ({"data": {}}, "data.text"),
        ({"data": {"text": 5}}, "data.text"),
        ({"data": "text"}, "data"),
        ({"dta": {"text": "x"}}, "dta"),
        (
            {"data": {"text": "abc"}, "gold": {"ents": [{"start": 0, "end": 9, "label": "drug"}]}},
            "gold.ents",
        ),
        ({"data": {"text": "abc"}, "gold": {"nope": "yes"}}, "gold.nope"),
        ({"data": {"text": "abc"}, "external_id": ""}, "external_id"),
        ({"data": {"text": "abc"}, "priority": "high"}, "priority"),
    ],
)
def test_each_kind_of_bad_task_is_named(
    client: TestClient, make: Factory, task: object, field: str
) -> None:
    owner = make.person("owner")
    project = make.project(owner, SPANS_SCHEMA)
    reply = client.post(
        f"/api/v1/projects/{project.id}/tasks",
        json=[{"data": {"text": "fine"}}, task],
        headers=owner.headers,
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["details"][0] | {"message": ""} == {
        "line": 2,
        "field": field,
        "message": "",
    }
    assert _count(client, project.id, owner.headers) == 0


def test_duplicate_external_ids(client: TestClient, make: Factory) -> None:
    owner = make.person("owner")
    project = make.project(owner, SPANS_SCHEMA)
    url = f"/api/v1/projects/{project.id}/tasks"
    twice = [
        {"data": {"text": "a"}, "external_id": "x"},
        {"data": {"text": "b"}, "external_id": "x"},
    ]
    reply = client.post(url, json=twice, headers=owner.headers)
    assert reply.status_code == 422
    assert "repeats line 1" in reply.json()["error"]["details"][0]["message"]
    assert client.post(url, json=twice[:1], headers=owner.headers).status_code == 201
    again = client.post(
        url, json=twice[:1] + [{"data": {"text": "c"}, "external_id": "y"}], headers=owner.headers
    )
    assert again.status_code == 422
    assert "already in the project" in again.json()["error"]["details"][0]["message"]
    skipped = client.post(
        f"{url}?on_conflict=skip",
        json=twice[:1] + [{"data": {"text": "c"}, "external_id": "y"}],
        headers=owner.headers,
    )
    assert skipped.json() == {"created": 1, "skipped": 1}


def test_malformed_bodies(client: TestClient, make: Factory) -> None:
    owner = make.person("owner")
    project = make.project(owner, SPANS_SCHEMA)
    url = f"/api/v1/projects/{project.id}/tasks"
    broken = client.post(
        url, content=b"[{", headers={**owner.headers, "Content-Type": "application/json"}
    )
    assert broken.status_code == 422
    assert broken.json()["error"]["details"][0]["field"] == "line"
    not_array = client.post(url, json={"data": {"text": "x"}}, headers=owner.headers)
    assert not_array.status_code == 422
    xml = client.post(
        url, content=b"<tasks/>", headers={**owner.headers, "Content-Type": "application/xml"}
    )
    assert xml.status_code == 415 and xml.json()["error"]["code"] == "unsupported_media_type"


def test_body_too_large_is_413(database: Database, make: Factory, tmp_path: object) -> None:
    owner = make.person("owner")
    project = make.project(owner, SPANS_SCHEMA)
    app: FastAPI = create_app(
        Settings(database_url="sqlite://", max_body_bytes=1024), database=database
    )
    with TestClient(app) as client:
        big = [{"data": {"text": "x" * 100}} for _ in range(50)]
        reply = client.post(f"/api/v1/projects/{project.id}/tasks", json=big, headers=owner.headers)
        assert reply.status_code == 413
        assert reply.json()["error"]["code"] == "payload_too_large"


def test_who_may_read_and_import_tasks(client: TestClient, make: Factory) -> None:
    owner, reviewer, annotator, outsider = (
        make.person(n) for n in ("owner", "reviewer", "annotator", "outsider")
    )
    project = make.project(
        owner, SPANS_SCHEMA, members={Role.reviewer: [reviewer], Role.annotator: [annotator]}
    )
    make.tasks(project, [{"data": {"text": "x"}, "gold": {"label": "no"}}])
    url = f"/api/v1/projects/{project.id}/tasks"
    assert client.get(url, headers=reviewer.headers).json()["items"][0]["gold"] == {"label": "no"}
    assert client.get(url, headers=annotator.headers).status_code == 403
    assert client.get(url, headers=outsider.headers).status_code == 404
    task_id = client.get(url, headers=owner.headers).json()["items"][0]["id"]
    assert client.get(f"/api/v1/tasks/{task_id}", headers=annotator.headers).status_code == 404
    assert client.get(f"/api/v1/tasks/{task_id}", headers=outsider.headers).status_code == 404
    assert client.get(f"/api/v1/tasks/{task_id}", headers=reviewer.headers).status_code == 200
    assert (
        client.post(url, json=[{"data": {"text": "y"}}], headers=annotator.headers).status_code
        == 403
    )
    assert (
        client.post(url, json=[{"data": {"text": "y"}}], headers=outsider.headers).status_code
        == 404
    )
