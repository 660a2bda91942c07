"""Exporting a project: row contents, filters, round trips per format, API and CLI."""

import io
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from tests.conftest import Factory
from tests.io.conftest import MIXED_SCHEMA, Labelled, answers, mixed_task, ndjson, token_user
from typer.testing import CliRunner

from quorum.cli import app as cli
from quorum.db.models import Annotation, ReviewStatus, Role, Task
from quorum.db.types import utcnow
from quorum.domain import deliveries, export, projects, tasks
from quorum.domain.errors import Invalid
from quorum.domain.projects import schema_of
from quorum.io.delivery_files import write_delivery
from quorum.io.export_files import write_export
from quorum.io.task_files import read_tasks

SPANS = [{"start": 0, "end": 7, "label": "drug"}]


def exported(
    labelled: Labelled, fmt: Any = "jsonl", **options: Any
) -> tuple[bytes, list[dict[str, Any]]]:
    prepared = export.prepare(labelled.session, labelled.project, **options)
    sink = io.BytesIO()
    write_export(prepared, fmt, sink)
    body = sink.getvalue()
    rows = [orjson.loads(line) for line in body.splitlines()] if fmt == "jsonl" else []
    return body, rows


def three_tasks_labelled(labelled: Labelled) -> None:
    """t0 labelled by all three (2 good, 1 bad); t1 by one; t2 not at all."""
    labelled.session.add_all([])
    tasks.import_tasks(
        labelled.session,
        labelled.project,
        [tasks.Record(i, mixed_task(i, **({"gold": {"tags": ["z"]}} if i == 2 else {})))
         for i in range(3)],
    )  # fmt: skip
    labelled.label(0, answers("good", ["x"], [0, 1, 2], ents=SPANS, note="fine"))
    labelled.label(1, answers("good", ["x", "y"], [1, 0, 2], ents=SPANS))
    labelled.label(2, answers("bad", ["x"], [0, 1, 2], ents=[]), duration_ms=900)
    labelled.label(0, answers("bad", [], [2, 1, 0]))


def test_one_row_per_task_with_answers_confidence_and_labels(labelled: Labelled) -> None:
    three_tasks_labelled(labelled)
    _, rows = exported(labelled, method="mv")
    assert [(r["external_id"], r["n_labels"]) for r in rows] == [("t0", 3), ("t1", 1), ("t2", 0)]
    first = rows[0]
    assert first["data"] == mixed_task(0)["data"]
    assert first["answers"] == {
        "verdict": "good",
        "tags": ["x"],
        "order": [0, 1, 2],
        "ents": SPANS,
        "note": None,  # text has no aggregate
    }
    assert first["confidence"]["verdict"] == pytest.approx(2 / 3)
    assert first["confidence"]["note"] is None
    pseudonyms = {p.user.pseudonym for p in labelled.annotators}
    assert {a["annotator"] for a in first["annotations"]} == pseudonyms
    assert first["annotations"][0]["answers"]["note"] == "fine"
    assert "note" not in first["annotations"][1]["answers"]  # left out, as submitted
    assert first["annotations"][2]["duration_ms"] == 900
    assert first["annotations"][0]["submitted_at"].endswith("Z")
    assert rows[2]["answers"] == dict.fromkeys(first["answers"])  # no labels: all null
    assert rows[2]["gold"] == {"tags": ["z"]}


def test_no_email_or_user_id_leaves_in_an_export(labelled: Labelled) -> None:
    three_tasks_labelled(labelled)
    body, _ = exported(labelled)
    for person in labelled.annotators:
        assert person.user.email.encode() not in body
        assert f'"user_id":{person.user.id}'.encode() not in body


def test_rejected_labels_are_left_out(labelled: Labelled) -> None:
    three_tasks_labelled(labelled)
    labelled.session.execute(
        update(Annotation)
        .where(Annotation.duration_ms == 900)
        .values(review_status=ReviewStatus.rejected)
    )
    _, rows = exported(labelled, method="mv")
    assert rows[0]["n_labels"] == 2
    assert rows[0]["confidence"]["verdict"] == 1.0


def test_filters(labelled: Labelled) -> None:
    three_tasks_labelled(labelled)
    ids = lambda **o: [r["external_id"] for r in exported(labelled, method="mv", **o)[1]]  # noqa: E731
    assert ids(filters=export.ExportFilter(complete_only=True)) == ["t0"]
    assert ids(filters=export.ExportFilter(min_confidence=0.9)) == ["t1"]
    assert ids(filters=export.ExportFilter(min_confidence=0.5)) == ["t0", "t1"]
    later = utcnow() + timedelta(hours=1)
    labelled.session.execute(
        update(Annotation)
        .where(Annotation.task_id == first_task(labelled))
        .values(submitted_at=later)
    )
    assert ids(filters=export.ExportFilter(since=later - timedelta(minutes=1))) == ["t0"]
    assert ids(filters=export.ExportFilter(until=later - timedelta(minutes=1))) == ["t1"]


def test_a_time_without_a_zone_is_utc_in_every_export(labelled: Labelled, tmp_path: Path) -> None:
    """The API hands on ``since=2026-01-01T00:00:00`` as a naive datetime: it is UTC (the docs),
    it may meet an aware ``until``, and the sft delivery filters its labels by it too."""
    three_tasks_labelled(labelled)
    now = utcnow().replace(tzinfo=None)
    filters = export.ExportFilter(
        since=now - timedelta(hours=1), until=utcnow() + timedelta(hours=1)
    )
    assert [r["external_id"] for r in exported(labelled, filters=filters)[1]] == ["t0", "t1"]
    prepared = export.prepare(labelled.session, labelled.project, filters=filters)
    sft = deliveries.prepare(prepared, "sft", prompt_field="text")
    assert write_delivery(sft, tmp_path / "sft") == 1  # the one note
    ahead = export.ExportFilter(since=datetime(2999, 1, 1))
    assert exported(labelled, filters=ahead)[1] == []
    later = export.prepare(labelled.session, labelled.project, filters=ahead)
    assert (
        write_delivery(deliveries.prepare(later, "sft", prompt_field="text"), tmp_path / "x") == 0
    )
    assert export.ExportFilter(since=datetime(2026, 1, 1)).check().since == datetime(
        2026, 1, 1, tzinfo=UTC
    )


def first_task(labelled: Labelled) -> int:
    query = select(Task.id).where(Task.project_id == labelled.project.id).order_by(Task.id)
    return int(labelled.session.scalars(query).first() or 0)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"method": "best"}, "method"),
        ({"filters": export.ExportFilter(min_confidence=1.5)}, "min_confidence"),
    ],
)
def test_bad_options_are_refused(labelled: Labelled, options: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid) as raised:
        export.prepare(labelled.session, labelled.project, **options)
    assert raised.value.details[0]["field"] == field


@pytest.mark.parametrize(
    ("fmt", "reader"), [("jsonl", "ndjson"), ("csv", "csv"), ("parquet", "parquet")]
)
def test_round_trip_gives_the_same_tasks(
    labelled: Labelled, make: Factory, session: Session, fmt: Any, reader: Any
) -> None:
    three_tasks_labelled(labelled)
    body, _ = exported(labelled, fmt)
    copy = make.project(labelled.owner, MIXED_SCHEMA)
    records = read_tasks(io.BytesIO(body), reader, schema_of(copy))
    assert tasks.import_tasks(session, copy, records).created == 3
    assert task_contents(session, copy.id) == task_contents(session, labelled.project.id)


def task_contents(session: Session, project_id: int) -> list[tuple[Any, ...]]:
    query = select(Task.external_id, Task.data, Task.gold, Task.priority).where(
        Task.project_id == project_id
    )
    return [tuple(row) for row in session.execute(query.order_by(Task.id))]


def test_parquet_has_the_nested_schema(labelled: Labelled) -> None:
    three_tasks_labelled(labelled)
    body, _ = exported(labelled, "parquet", batch_tasks=2)
    parquet = pq.ParquetFile(io.BytesIO(body))
    assert parquet.metadata.num_row_groups == 2
    schema = parquet.schema_arrow
    assert str(schema.field("answers").type.field("tags").type) == "list<element: string>"
    annotation = schema.field("annotations").type.value_type
    assert [annotation.field(i).name for i in range(annotation.num_fields)] == [
        "annotator",
        "answers",
        "submitted_at",
        "duration_ms",
    ]
    table = parquet.read()
    assert table.column("answers").to_pylist()[0]["ents"] == SPANS
    assert [len(a) for a in table.column("annotations").to_pylist()] == [3, 1, 0]


def test_csv_is_flat_with_text_as_is_and_json_otherwise(labelled: Labelled) -> None:
    three_tasks_labelled(labelled)
    body, _ = exported(labelled, "csv", method="mv")
    header, first = body.decode().splitlines()[:2]
    assert header.split(",")[:6] == [
        '"task_id"',
        '"external_id"',
        '"data.items"',
        '"data.source"',
        '"data.text"',
        '"gold.verdict"',
    ]
    assert '"aspirin 0 mg"' in first and '"[""a"",""b"",""c""]"' in first


def test_csv_keeps_integers_beyond_64_bits(make: Factory, session: Session) -> None:
    """Task data keeps such integers exactly (quorum.db.types.loads_json); so does the CSV."""
    project = make.project(token_user(session, "lead"))
    big, nested = 123456789012345678901234567890, {"n": -98765432109876543210987}
    make.tasks(project, [{"data": {"big": big, "nested": nested, "text": "1e400"}}])
    sink = io.BytesIO()
    write_export(export.prepare(session, project), "csv", sink)
    header, row = sink.getvalue().decode().splitlines()
    assert header.startswith('"task_id","external_id","data.big","data.nested","data.text"')
    after_task_id = row.split(",", 1)[1]
    assert after_task_id.startswith(f',"{big}","{{""n"":-98765432109876543210987}}","1e400"')


def test_api_export_is_for_owners(client: TestClient, labelled: Labelled, make: Factory) -> None:
    three_tasks_labelled(labelled)
    reviewer = token_user(labelled.session, "reviewer")
    projects.add_member(labelled.session, labelled.project, reviewer.user.email, Role.reviewer)
    url = f"/api/v1/projects/{labelled.project.id}/export"
    assert client.get(url, headers=labelled.annotators[0].headers).status_code == 403
    assert client.get(url, headers=reviewer.headers).status_code == 403
    outsider = token_user(labelled.session, "outsider")
    assert client.get(url, headers=outsider.headers).status_code == 404
    reply = client.get(url, headers=labelled.owner.headers, params={"method": "mv"})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/x-ndjson"
    assert len(reply.content.splitlines()) == 3
    admin = token_user(labelled.session, "admin", admin=True)
    parquet = client.get(url, headers=admin.headers, params={"format": "parquet"})
    assert parquet.status_code == 200, parquet.text
    assert parquet.headers["content-disposition"].endswith('.parquet"')
    assert pq.read_table(io.BytesIO(parquet.content)).num_rows == 3


@pytest.mark.parametrize(
    "params", [{"format": "xlsx"}, {"method": "best"}, {"min_confidence": "2"}]
)
def test_api_export_refuses_bad_parameters(
    client: TestClient, labelled: Labelled, params: dict[str, str]
) -> None:
    url = f"/api/v1/projects/{labelled.project.id}/export"
    assert client.get(url, headers=labelled.owner.headers, params=params).status_code == 422


def _cli_project(tmp_path: Path) -> tuple[str, CliRunner]:
    """Project 1 with four tasks in a new SQLite file, made through the CLI."""
    db, runner = f"sqlite:///{tmp_path}/cli.db", CliRunner()
    runner.invoke(cli, ["user", "create", "lead@example.com", "--db", db])
    spec = tmp_path / "spec.json"
    spec.write_text(orjson.dumps({"name": "p", "schema": MIXED_SCHEMA}).decode())
    runner.invoke(cli, ["project", "create", str(spec), "--owner", "lead@example.com", "--db", db])
    tasks_file = tmp_path / "tasks.ndjson"
    tasks_file.write_bytes(ndjson([mixed_task(i) for i in range(4)]))
    assert runner.invoke(cli, ["import", "1", str(tasks_file), "--db", db]).exit_code == 0
    return db, runner


def test_cli_export_writes_the_file_or_nothing(tmp_path: Path) -> None:
    db, runner = _cli_project(tmp_path)
    out = tmp_path / "out.parquet"
    result = runner.invoke(cli, ["export", "1", "--out", str(out), "--db", db])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"exported 4 tasks of project 1 to {out}"
    assert pq.read_table(out).num_rows == 4
    bad = runner.invoke(cli, ["export", "1", "--out", str(tmp_path / "x.xlsx"), "--db", db])
    assert bad.exit_code == 2 and "jsonl, csv or parquet" in bad.output
    late = runner.invoke(
        cli, ["export", "1", "--out", str(tmp_path / "y.csv"), "--since", "noon", "--db", db]
    )
    assert late.exit_code == 2 and "--since" in late.output
    (tmp_path / "folder.jsonl").mkdir()
    into_folder = runner.invoke(
        cli, ["export", "1", "--out", str(tmp_path / "folder.jsonl"), "--db", db]
    )
    assert into_folder.exit_code == 2
    assert f"{tmp_path / 'folder.jsonl'} is a directory" in into_folder.output  # not the .part
    written = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("cli.db"))
    assert written == ["folder.jsonl", "out.parquet", "spec.json", "tasks.ndjson"]  # no .part


@pytest.fixture
def umask_027() -> Iterator[None]:
    previous = os.umask(0o027)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("umask_027")
def test_cli_exports_take_the_users_umask(tmp_path: Path) -> None:
    """Written under a temporary name and renamed, exports would keep tempfile's private mode
    (0600, 0700); they get what the umask gives any new file instead."""
    db, runner = _cli_project(tmp_path)
    for out, extra in ((tmp_path / "out.jsonl", []), (tmp_path / "hf", ["--format", "hf"])):
        result = runner.invoke(cli, ["export", "1", "--out", str(out), *extra, "--db", db])
        assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "out.jsonl").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "hf").stat().st_mode) == 0o750
    inside = list((tmp_path / "hf").rglob("*"))
    assert inside and all(
        stat.S_IMODE(p.stat().st_mode) == (0o750 if p.is_dir() else 0o640) for p in inside
    )
