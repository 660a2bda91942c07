"""CSV files on the command line: a quote that never closes exits 2 with one line naming the
file, line and column, and changes nothing; quoted values that span lines still read."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import quorum.io.labels as labels_io
from quorum.cli import app

runner = CliRunner()
OPEN = "a quote opens this value and never closes, so it would run to the end of the file"


@pytest.mark.parametrize(
    "command", [["aggregate", "--method", "mv"], ["agreement"]], ids=["aggregate", "agreement"]
)
@pytest.mark.parametrize(
    ("text", "block", "said"),
    [
        (
            'task,worker,label\nt1,w1,a\nt1,w2,"b\nt2,w1,a\nt2,w2,b\n',
            None,
            f"line 3, field 'label': {OPEN}",
        ),
        ('task,worker,label\nt1,w1,a\n"t1,w2,b\nt2,w1,a\n', None, f"line 3, field 'task': {OPEN}"),
        (  # in a column the command does not read
            'task,worker,label,note\nt1,w1,a,x\nt1,w2,b,"oops\nt2,w1,a,y\n',
            None,
            f"line 3, field 'note': {OPEN}",
        ),
        (  # after a value over two lines, on the line the quote opens
            'task,worker,label\nt1,"w\n1",a\nt1,w2,"b\nt2,w1,a\n',
            None,
            f"line 4, field 'label': {OPEN}",
        ),
        (  # the rest of the file is longer than PyArrow's blocks
            "task,worker,label\n"
            + "".join(f"t{i},w{i % 3},{i % 2}\n" for i in range(50))
            + 't50,w2,"1\n'
            + "".join(f"t{i},w{i % 3},{i % 2}\n" for i in range(51, 300)),
            64,
            f"line 52, field 'label': {OPEN}",
        ),
        (
            'task,worker,"label\nt1,w1,a\n',
            None,
            "line 1: the header row opens a quote that never closes",
        ),
    ],
    ids=["last column", "first column", "unread column", "after two lines", "big", "header"],
)
def test_labels_with_a_quote_left_open_exit_2_naming_the_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    text: str,
    block: int | None,
    said: str,
) -> None:
    if block:
        monkeypatch.setattr(labels_io, "CSV_BLOCK_BYTES", block)
    path = tmp_path / "uq_labels.csv"
    path.write_text(text)
    result = runner.invoke(app, [command[0], str(path), *command[1:]])
    assert result.exit_code == 2, result.output
    assert result.output == f"error: uq_labels.csv, {said}\n"


def test_labels_may_span_lines_inside_quotes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(labels_io, "CSV_BLOCK_BYTES", 64)  # values cross PyArrow's blocks
    rows = [f't{i},"worker\n{i % 3}","say ""{i % 2}""\r\n!"' for i in range(40)]
    path = tmp_path / "labels.csv"
    path.write_text("task,worker,label\n" + "\n".join(rows))  # no line break at the end
    result = runner.invoke(app, ["aggregate", str(path), "--method", "mv", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["tasks"], report["workers"], report["labels"]) == (40, 3, 40)


def test_a_vendor_delivery_with_a_quote_left_open_imports_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/audit.db"
    assert runner.invoke(app, ["user", "create", "lead@example.com", "--db", db]).exit_code == 0
    spec = tmp_path / "spec.json"
    questions = [
        {"name": "animal", "kind": "choice", "options": ["cat", "dog"]},
        {"name": "note", "kind": "text", "required": False},
    ]
    spec.write_text(json.dumps({"name": "p", "schema": {"questions": questions}}))
    create = ["project", "create", str(spec), "--owner", "lead@example.com", "--db", db]
    assert runner.invoke(app, create).output.strip() == "1"
    tasks = tmp_path / "tasks.csv"
    tasks.write_text("external_id,text\nt0,a\nt1,b\nt2,c\n")
    assert runner.invoke(app, ["import", "1", str(tasks), "--db", db]).exit_code == 0
    delivery = tmp_path / "acme.csv"
    delivery.write_text('external_id,animal,note\nt0,cat,fine\nt1,dog,"oops\nt2,cat,ok\n')
    result = runner.invoke(
        app, ["audit", "import", "1", "--vendor", "Acme", str(delivery), "--db", db]
    )
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "line 3: note: a quote opens this cell and never closes" in result.output
    report = runner.invoke(app, ["audit", "report", "1", "--json", "--db", db])
    assert json.loads(report.output)["vendors"] == []
