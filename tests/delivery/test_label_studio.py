"""A Label Studio JSON export (written by hand from Label Studio's documented task format) moves
into Quorum with its history, and comes back out of Quorum's export unchanged."""

import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from tests.conftest import Factory
from typer.testing import CliRunner

from quorum.cli import app
from quorum.db.engine import Database, make_engine
from quorum.db.models import Annotation, Project, Task, TaskStatus, User
from quorum.domain import export, history, projects, users
from quorum.domain.errors import Invalid
from quorum.domain.projects import schema_of
from quorum.io.export_files import write_export
from quorum.io.label_studio import read_label_studio

EXPORT = Path(__file__).parent / "data" / "label_studio_export.json"
SCHEMA = {
    "questions": [
        {"name": "sentiment", "kind": "choice", "options": ["Positive", "Negative", "Neutral"]},
        {
            "name": "topics",
            "kind": "multi_choice",
            "options": ["health", "people", "place"],
            "required": False,
        },
        {"name": "quality", "kind": "rating", "min": 1, "max": 5, "required": False},
        {
            "name": "entities",
            "kind": "spans",
            "field": "text",
            "labels": ["PER", "ORG", "LOC"],
            "required": False,
        },
        {"name": "summary", "kind": "text", "required": False},
    ]
}


def _import(session: Session, project: Project, raw: bytes) -> history.HistoryImport:
    records = read_label_studio(io.BytesIO(raw), schema_of(project))
    return history.import_history(session, project, records)


@pytest.fixture
def project(make: Factory) -> Project:
    return make.project(make.person("owner"), SCHEMA, {"overlap": 2})


def test_the_export_round_trips_through_quorum(session: Session, project: Project) -> None:
    result = _import(session, project, EXPORT.read_bytes())
    assert result == history.HistoryImport(
        tasks=4, annotations=4, annotators=2, cancelled=1, empty=1, repeated=1
    )
    rows = _exported(session, project)
    source = {f"ls-{task['id']}": task for task in json.loads(EXPORT.read_text())}
    assert set(rows) == set(source)
    first = rows["ls-101"]
    assert first["gold"]["sentiment"] == "Positive"  # the ground-truth annotation
    assert first["n_labels"] == 2 and first["answers"]["sentiment"] == "Positive"
    by_time = sorted(first["annotations"], key=lambda a: a["submitted_at"])
    assert by_time[0]["answers"] == {
        "sentiment": "Positive",
        "topics": ["health", "people"],
        "quality": 4,
        "entities": [
            {"start": 4, "end": 12, "label": "PER"},
            {"start": 20, "end": 34, "label": "ORG"},
            {"start": 38, "end": 44, "label": "LOC"},
        ],
        "summary": "A doctor joins a hospital\nin Lisbon.",
    }
    assert (by_time[0]["submitted_at"], by_time[0]["duration_ms"]) == (
        "2024-03-09T21:52:49.513742Z",
        21500,
    )
    text = source["ls-102"]["data"]["text"]
    second = {a["annotator"]: a for a in rows["ls-102"]["annotations"]}
    spans = next(a for a in second.values() if "entities" in a["answers"])["answers"]["entities"]
    assert [text[s["start"] : s["end"]] for s in spans] == ["Porto", "Sara"]  # after the emoji
    # The same Label Studio user is the same pseudonym everywhere; the later label of a user
    # who labelled a task twice is the one kept.
    annotator_one = {a["annotator"] for a in rows["ls-101"]["annotations"]} & set(second)
    assert len(annotator_one) == 2
    assert sorted(a["answers"]["sentiment"] for a in second.values()) == ["Positive", "Positive"]
    assert rows["ls-103"]["n_labels"] == rows["ls-104"]["n_labels"] == 0
    statuses = dict(session.execute(select(Task.external_id, Task.status)).all())
    assert statuses["ls-101"] is statuses["ls-102"] is TaskStatus.complete
    assert statuses["ls-104"] is TaskStatus.open
    people = session.scalars(
        select(User).where(User.email.like("%label-studio%") | (User.email == "maria@lab.example"))
    )
    assert {(u.email, u.is_active, u.password_hash) for u in people} == {
        ("label-studio-1@import.invalid", False, None),
        ("maria@lab.example", False, None),
    }


def _exported(session: Session, project: Project) -> dict[str, Any]:
    sink = io.BytesIO()
    write_export(export.prepare(session, project), "jsonl", sink)
    lines = [orjson.loads(line) for line in sink.getvalue().splitlines()]
    return {row["external_id"]: row for row in lines}


def _broken(change: Any) -> bytes:
    tasks = json.loads(EXPORT.read_text())
    change(tasks)
    return json.dumps(tasks).encode()


@pytest.mark.parametrize(
    ("change", "line", "field", "message"),
    [
        (lambda t: t[0]["annotations"][0]["result"][0].update(from_name="mood"), 1,
         "annotations[0].result[0].from_name", "'mood' is not a question of the project"),
        (lambda t: t[1]["annotations"][0]["result"][0].update(type="taxonomy"), 2,
         "annotations[0].result[0].type", "Label Studio type 'taxonomy' is not supported"),
        (lambda t: t[0]["annotations"][1]["result"][0]["value"].update(choices=["a", "b"]), 1,
         "annotations[1].result[0].value.choices", "'sentiment' takes one choice, got 2"),
        (lambda t: t[0]["annotations"][0]["result"][4]["value"].update(rating=9), 1,
         "annotations[0].result.quality", "must be between 1 and 5"),
        (lambda t: t[3].update(id=101), 4, "id", "task 'ls-101' repeats line 1"),
        (lambda t: t[2].pop("data"), 3, "data", "must be an object"),
    ],
)  # fmt: skip
def test_a_bad_export_names_the_place_and_imports_nothing(
    session: Session, project: Project, change: Any, line: int, field: str, message: str
) -> None:
    with pytest.raises(Invalid) as error:
        _import(session, project, _broken(change))
    assert error.value.details[0] == {"line": line, "field": field, "message": message}
    assert session.scalar(select(func.count()).select_from(Task)) == 0
    assert session.scalar(select(func.count()).select_from(Annotation)) == 0
    assert session.scalar(select(func.count()).where(User.email.like("%import.invalid"))) == 0


def test_importing_the_same_export_twice_is_refused(session: Session, project: Project) -> None:
    _import(session, project, EXPORT.read_bytes())
    with pytest.raises(Invalid, match="already in the project"):
        _import(session, project, EXPORT.read_bytes())


def test_api_and_cli(client: TestClient, make: Factory, tmp_path: Path) -> None:
    owner = make.person("owner")
    project = make.project(owner, SCHEMA)
    url = f"/api/v1/projects/{project.id}/tasks/label-studio"
    reply = client.post(
        url,
        content=EXPORT.read_bytes(),
        headers={**owner.headers, "Content-Type": "application/json"},
    )
    assert reply.status_code == 201 and reply.json()["annotations"] == 4
    upload = {"file": ("export.json", _broken(lambda t: t[0].pop("id")), "application/json")}
    refused = client.post(url, files=upload, headers=owner.headers)
    assert refused.status_code == 422 and refused.json()["error"]["details"][0]["line"] == 1

    db = f"sqlite:///{tmp_path}/ls.db"
    runner = CliRunner()
    assert runner.invoke(app, ["migrate", "--db", db]).exit_code == 0
    engine = make_engine(db)
    with Database(engine).session(write=True) as session:
        lead = users.create_user(session, "lead@example.com")
        project_id = projects.create(session, lead, name="ls", schema=SCHEMA, policy={}).id
    engine.dispose()
    done = runner.invoke(
        app, ["import", str(project_id), str(EXPORT), "--format", "label-studio", "--db", db]
    )
    assert done.exit_code == 0, done.output
    assert done.output.startswith("imported 4 tasks with 4 annotations by 2 new annotators")
    again = runner.invoke(
        app, ["import", str(project_id), str(EXPORT), "--format", "label-studio", "--db", db]
    )
    assert again.exit_code == 2 and again.output.count("\n") == 1 and "line 1" in again.output
