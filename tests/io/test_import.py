"""Importing tasks: all or nothing, bad rows named by line, in batches, through API and CLI."""

import asyncio
import io
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from tests.conftest import Factory
from tests.io.conftest import MIXED_SCHEMA, mixed_task, ndjson, parquet_bytes
from typer.testing import CliRunner

from quorum.cli import app as cli
from quorum.db.models import Project, Role, Task
from quorum.domain import tasks
from quorum.domain.errors import Invalid
from quorum.domain.projects import schema_of
from quorum.io.task_files import read_tasks

TEXT_SCHEMA = {"questions": [{"name": "label", "kind": "choice", "options": ["yes", "no"]}]}


def count(session: Session, project: Project) -> int:
    return session.scalar(select(func.count()).where(Task.project_id == project.id)) or 0


def import_bytes(
    session: Session, project: Project, body: bytes, fmt: Any, **kwargs: Any
) -> tasks.ImportResult:
    records = read_tasks(io.BytesIO(body), fmt, schema_of(project))
    return tasks.import_tasks(session, project, records, **kwargs)


def ten_thousand_with_bad_line(bad: bytes, at: int = 5000) -> bytes:
    lines = ndjson([{"data": {"text": f"note {i}"}} for i in range(10_000)]).splitlines()
    lines[at - 1] = bad
    return b"\n".join(lines) + b"\n"


def test_a_bad_line_in_the_middle_rejects_all_in_small_batches(
    session: Session, make: Factory
) -> None:
    project = make.project(make.person(), TEXT_SCHEMA)
    body = ten_thousand_with_bad_line(b'{"data": {"text": "broken"')
    with pytest.raises(Invalid) as raised:
        import_bytes(session, project, body, "ndjson", batch_size=700)
    assert [(p["line"], p["field"]) for p in raised.value.details] == [(5000, "line")]
    assert raised.value.message.startswith("1 problem; nothing was imported; first at line 5000")
    assert count(session, project) == 0


def test_problems_are_the_first_fifty_by_line_and_all_counted(
    session: Session, make: Factory
) -> None:
    project = make.project(make.person(), TEXT_SCHEMA)
    rows: list[Any] = [{"data": {"text": "ok"}} for _ in range(300)]
    for i in range(299, 0, -3):  # bad rows found in every batch
        rows[i] = {"data": {"text": "ok"}, "gold": {"label": "maybe"}}
    with pytest.raises(Invalid) as raised:
        tasks.import_tasks(
            session, project, [tasks.Record(i + 1, r) for i, r in enumerate(rows)], batch_size=7
        )
    lines = [p["line"] for p in raised.value.details]
    assert lines == sorted(lines) and len(lines) == 50 and lines[0] == 3
    assert raised.value.message.startswith("100 problems;")


def test_duplicates_across_batches_within_the_file_and_the_project(
    session: Session, make: Factory
) -> None:
    project = make.project(make.person(), TEXT_SCHEMA)
    first = [{"external_id": f"e{i}", "data": {"text": "x"}} for i in range(20)]
    assert import_bytes(session, project, ndjson(first), "ndjson", batch_size=3).created == 20
    again = [{"external_id": "new1", "data": {"text": "x"}}, first[7], first[0], first[7]]
    with pytest.raises(Invalid) as raised:
        import_bytes(session, project, ndjson(again), "ndjson", batch_size=2)
    messages = [(p["line"], p["message"]) for p in raised.value.details]
    assert messages == [
        (2, "'e7' already in the project"),
        (3, "'e0' already in the project"),
        (4, "'e7' repeats line 2"),
    ]
    skipped = import_bytes(
        session, project, ndjson(again[:3]), "ndjson", batch_size=2, on_conflict="skip"
    )
    assert (skipped.created, skipped.skipped) == (1, 2)
    assert count(session, project) == 21


def test_export_rows_reimport_but_hand_written_answers_are_refused(
    session: Session, make: Factory
) -> None:
    project = make.project(make.person(), TEXT_SCHEMA)
    exported = {"task_id": 4, "data": {"text": "a"}, "answers": {"label": "yes"}, "n_labels": 2}
    assert import_bytes(session, project, ndjson([exported]), "ndjson").created == 1
    with pytest.raises(Invalid) as raised:
        import_bytes(session, project, ndjson([{"data": {"text": "a"}, "answers": {}}]), "ndjson")
    assert raised.value.details[0]["field"] == "answers"


def test_nul_characters_are_refused_wherever_they_are(session: Session, make: Factory) -> None:
    project = make.project(make.person(), TEXT_SCHEMA)
    rows = [
        {"data": {"text": "a\u0000b"}},
        {"data": {"text": "fine", "k\u0000": 1}},
        {"data": {"text": "fine"}, "external_id": "x\u0000"},
        {"data": {"text": "a literal \\u0000 is fine"}},
    ]
    with pytest.raises(Invalid) as raised:
        import_bytes(session, project, ndjson(rows), "ndjson")
    assert [p["line"] for p in raised.value.details] == [1, 2, 3]


def test_imported_tasks_are_stored_as_given(session: Session, make: Factory) -> None:
    project = make.project(make.person(), MIXED_SCHEMA, {"overlap": 2})
    row = mixed_task(1, priority=5, gold={"verdict": "good"})
    row["data"]["nested"] = {"b": [1, 2.5, None, True], "a": "é"}
    import_bytes(session, project, ndjson([row]), "ndjson")
    task = session.scalars(select(Task).where(Task.project_id == project.id)).one()
    session.refresh(task)
    assert (task.external_id, task.data, task.gold) == ("t1", row["data"], {"verdict": "good"})
    assert (task.priority, task.overlap, task.status, task.n_submitted) == (5, 2, "open", 0)


def api_import(client: TestClient, project: Project, headers: dict[str, str], **kwargs: Any) -> Any:
    return client.post(f"/api/v1/projects/{project.id}/tasks", headers=headers, **kwargs)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "ndjson"])
def test_api_multipart_upload_in_each_format(client: TestClient, make: Factory, fmt: str) -> None:
    owner = make.person("owner")
    project = make.project(owner, TEXT_SCHEMA)
    texts = [f"note {i}" for i in range(3)]
    body = {
        "csv": ("text\n" + "\n".join(texts) + "\n").encode(),
        "parquet": parquet_bytes(pa.table({"text": texts})),
        "ndjson": ndjson([{"data": {"text": t}} for t in texts]),
    }[fmt]
    files = {"file": (f"tasks.{fmt}", body, "application/octet-stream")}
    reply = api_import(client, project, owner.headers, files=files)
    assert (reply.status_code, reply.json()) == (201, {"created": 3, "skipped": 0}), reply.text


def test_api_raw_csv_with_a_bad_line_in_the_middle(client: TestClient, make: Factory) -> None:
    owner = make.person("owner")
    project = make.project(owner, TEXT_SCHEMA)
    lines = ["text,gold.label", *(f"note {i},yes" for i in range(10_000))]
    lines[5000] = "note,maybe"  # line 5001 of the file
    reply = api_import(
        client,
        project,
        {**owner.headers, "Content-Type": "text/csv"},
        content="\n".join(lines).encode(),
    )
    assert reply.status_code == 422
    assert [(d["line"], d["field"]) for d in reply.json()["error"]["details"]] == [
        (5001, "gold.label")
    ]
    assert count_api(client, project, owner.headers) == 0


UNCLOSED_QUOTE = b'external_id,text\nu0,fine\nu1,"unterminated\nu2,ok\n'


@pytest.mark.parametrize("multipart", [False, True], ids=["text/csv", "multipart"])
def test_api_csv_with_a_quote_left_open_is_refused_whole(
    client: TestClient, make: Factory, multipart: bool
) -> None:
    owner = make.person("owner")
    project = make.project(owner, TEXT_SCHEMA)
    if multipart:
        files = {"file": ("uq.csv", UNCLOSED_QUOTE, "text/csv")}
        reply = api_import(client, project, owner.headers, files=files)
    else:
        headers = {**owner.headers, "Content-Type": "text/csv"}
        reply = api_import(client, project, headers, content=UNCLOSED_QUOTE)
    assert reply.status_code == 422, reply.text
    (problem,) = reply.json()["error"]["details"]
    assert (problem["line"], problem["field"]) == (3, "text")
    assert "never closes" in problem["message"]
    assert count_api(client, project, owner.headers) == 0


def count_api(client: TestClient, project: Project, headers: dict[str, str]) -> int:
    reply = client.get(f"/api/v1/projects/{project.id}/tasks?limit=1000", headers=headers)
    return len(reply.json()["items"])


def test_api_format_query_overrides_the_content_type(client: TestClient, make: Factory) -> None:
    owner = make.person("owner")
    project = make.project(owner, TEXT_SCHEMA)
    body = ndjson([{"data": {"text": "a"}}, {"data": {"text": "b"}}])
    headers = {**owner.headers, "Content-Type": "application/octet-stream"}
    unknown = api_import(client, project, headers, content=body)
    assert unknown.status_code == 415  # a body of a type the API does not read
    assert unknown.json()["error"]["code"] == "unsupported_media_type"
    named_wrong = api_import(client, project, headers, content=body, params={"format": "xml"})
    assert named_wrong.status_code in (400, 422)
    reply = api_import(client, project, headers, content=body, params={"format": "jsonl"})
    assert reply.json() == {"created": 2, "skipped": 0}


def test_api_multipart_without_a_file_field_is_a_bad_request(
    client: TestClient, make: Factory
) -> None:
    owner = make.person("owner")
    project = make.project(owner, TEXT_SCHEMA)
    reply = api_import(client, project, owner.headers, data={"tasks": "x"}, files={"other": b"x"})
    assert reply.status_code == 400
    assert "'file'" in reply.json()["error"]["message"]


def test_api_import_runs_off_the_event_loop(
    client: TestClient, make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = make.person("owner")
    project = make.project(owner, TEXT_SCHEMA)
    seen: list[bool] = []
    real = tasks.import_tasks

    def spy(*args: Any, **kwargs: Any) -> tasks.ImportResult:
        try:
            asyncio.get_running_loop()
            seen.append(True)
        except RuntimeError:  # no loop in this thread: a worker thread
            seen.append(False)
        return real(*args, **kwargs)

    monkeypatch.setattr(tasks, "import_tasks", spy)
    body = ndjson([{"data": {"text": "a"}}])
    reply = api_import(
        client, project, {**owner.headers, "Content-Type": "application/x-ndjson"}, content=body
    )
    assert reply.status_code == 201
    assert seen == [False]


def test_api_only_owners_import(client: TestClient, make: Factory) -> None:
    owner, reviewer = make.person("owner"), make.person("reviewer")
    project = make.project(owner, TEXT_SCHEMA, members={Role.reviewer: [reviewer]})
    reply = api_import(client, project, reviewer.headers, json=[{"data": {"text": "a"}}])
    assert reply.status_code == 403


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    runner = CliRunner()
    assert runner.invoke(cli, ["user", "create", "lead@example.com", "--db", url]).exit_code == 0
    spec = tmp_path / "spec.json"
    spec.write_text(orjson.dumps({"name": "p", "schema": TEXT_SCHEMA}).decode())
    created = runner.invoke(
        cli, ["project", "create", str(spec), "--owner", "lead@example.com", "--db", url]
    )
    assert created.output.strip() == "1"
    return url


def test_cli_import_prints_the_count(db: str, tmp_path: Path) -> None:
    path = tmp_path / "tasks.csv"
    path.write_text("external_id,text\na,one\nb,two\n")
    result = CliRunner().invoke(cli, ["import", "1", str(path), "--db", db])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "imported 2 tasks into project 1"
    again = CliRunner().invoke(cli, ["import", "1", str(path), "--on-conflict", "skip", "--db", db])
    assert "imported 0 tasks into project 1 (2 skipped" in again.output


def test_cli_bad_line_exits_2_with_one_line_and_imports_nothing(db: str, tmp_path: Path) -> None:
    path = tmp_path / "tasks.ndjson"
    bad = b'{"data": {"text": "x"}, "gold": {"label": "maybe"}}'
    path.write_bytes(ten_thousand_with_bad_line(bad, at=6123))
    result = CliRunner().invoke(cli, ["import", "1", str(path), "--db", db])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert "line 6123" in result.output and "gold.label" in result.output
    good = tmp_path / "good.ndjson"
    good.write_bytes(ndjson([{"data": {"text": "ok"}}]))
    after = CliRunner().invoke(cli, ["import", "1", str(good), "--db", db])
    assert after.output.strip() == "imported 1 task into project 1"  # the first import left none


def test_cli_csv_with_a_quote_left_open_exits_2_and_imports_nothing(
    db: str, tmp_path: Path
) -> None:
    path = tmp_path / "uq.csv"
    path.write_bytes(UNCLOSED_QUOTE)
    result = CliRunner().invoke(cli, ["import", "1", str(path), "--db", db])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert (
        "1 problem; nothing was imported; first at line 3: text: a quote opens this cell and "
        "never closes, so it would run to the end of the file\n"
    ) in result.output
    path.write_bytes(UNCLOSED_QUOTE.replace(b'"', b""))
    after = CliRunner().invoke(cli, ["import", "1", str(path), "--db", db])
    assert after.output.strip() == "imported 3 tasks into project 1"  # the first import left none


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "1", "missing.ndjson"], "missing.ndjson"),
        (["import", "1", "tasks.xml"], "cannot tell the format"),
        (["import", "7", "tasks.ndjson"], "no project 7"),
        (["import", "1", "tasks.ndjson", "--on-conflict", "merge"], "--on-conflict"),
    ],
)
def test_cli_bad_arguments_exit_2(db: str, tmp_path: Path, args: list[str], message: str) -> None:
    for name in ("tasks.ndjson", "tasks.xml"):
        (tmp_path / name).write_bytes(ndjson([{"data": {"text": "x"}}]))
    args = [str(tmp_path / a) if a.startswith(("tasks", "missing")) else a for a in args]
    result = CliRunner().invoke(cli, [*args, "--db", db])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
