"""Limits on one task: its data's size (each lease sends it whole to the page), its id."""

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.conftest import Factory

from quorum.db.models import Role, Task
from quorum.domain.tasks import MAX_TASK_DATA_BYTES


def test_an_oversized_task_is_refused_by_line_and_nothing_is_imported(
    client: TestClient, make: Factory
) -> None:
    owner = make.person("owner")
    project = make.project(owner, members={Role.annotator: []})
    big = "x" * MAX_TASK_DATA_BYTES  # with its key and quotes, just over the limit
    body = f'{{"data": {{"text": "fine"}}}}\n{{"data": {{"text": "{big}"}}}}\n'
    reply = client.post(
        f"/api/v1/projects/{project.id}/tasks",
        content=body.encode(),
        headers={**owner.headers, "Content-Type": "application/x-ndjson"},
    )
    assert reply.status_code == 422, reply.text[:300]
    [problem] = reply.json()["error"]["details"]
    assert (problem["line"], problem["field"]) == (2, "data")
    assert f"a task holds at most {MAX_TASK_DATA_BYTES:,}" in problem["message"]
    assert make.session.scalar(select(func.count()).select_from(Task)) == 0
    just_under = "x" * (MAX_TASK_DATA_BYTES - 100)
    fits = client.post(
        f"/api/v1/projects/{project.id}/tasks",
        content=f'{{"data": {{"text": "{just_under}"}}}}\n'.encode(),
        headers={**owner.headers, "Content-Type": "application/x-ndjson"},
    )
    assert fits.status_code == 201, fits.text[:300]


def test_a_blank_external_id_is_refused(client: TestClient, make: Factory) -> None:
    owner = make.person("owner")
    project = make.project(owner)
    reply = client.post(
        f"/api/v1/projects/{project.id}/tasks",
        json=[{"external_id": "a", "data": {"t": 1}}, {"external_id": "   ", "data": {"t": 2}}],
        headers=owner.headers,
    )
    assert reply.status_code == 422, reply.text
    [problem] = reply.json()["error"]["details"]
    assert (problem["line"], problem["field"], problem["message"]) == (
        2,
        "external_id",
        "is blank: only spaces",
    )
