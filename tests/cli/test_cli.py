"""The CLI on a real SQLite file: good input works, bad input exits 2 with one line."""

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quorum.cli import app

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/cli.db"


def test_migrate_user_token_project(db: str, tmp_path: Path) -> None:
    assert runner.invoke(app, ["migrate", "--db", db]).exit_code == 0
    created = runner.invoke(
        app,
        ["user", "create", "lead@example.com", "--admin", "--password-stdin", "--db", db],
        input="a long password\n",
    )
    assert created.exit_code == 0, created.output
    assert "(admin)" in created.output
    token = runner.invoke(app, ["token", "create", "lead@example.com", "--name", "ci", "--db", db])
    assert token.exit_code == 0
    assert token.output.strip().startswith("qrm_")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: Triage\n"
        "instructions: Pick one.\n"
        "schema:\n  questions:\n    - {name: q, kind: choice, options: [a, b]}\n"
        "policy: {overlap: 3}\n"
    )
    project = runner.invoke(
        app, ["project", "create", str(spec), "--owner", "lead@example.com", "--db", db]
    )
    assert project.exit_code == 0, project.output
    assert project.output.strip().isdigit()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["user", "create", "not-an-email"], "is not an email address"),
        (["token", "create", "ghost@example.com"], "no user with email ghost@example.com"),
        (["project", "create", "missing.json", "--owner", "lead@example.com"], "missing.json"),
    ],
)
def test_bad_input_exits_2_with_one_line(db: str, args: list[str], message: str) -> None:
    result = runner.invoke(app, [*args, "--db", db])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("typed", ["", "\n", "short\n"])
def test_a_password_from_stdin_must_be_there(db: str, typed: str) -> None:
    args = ["user", "create", "lead@example.com", "--password-stdin", "--db", db]
    result = runner.invoke(app, args, input=typed)
    assert result.exit_code == 2, result.output
    assert "password: must have at least 8 characters" in result.output
    assert len(result.output.strip().splitlines()) == 1
    # Nothing was created: the same email is still free.
    again = runner.invoke(app, args, input="a long password\n")
    assert again.exit_code == 0, again.output


def test_bad_spec_names_the_field(db: str, tmp_path: Path) -> None:
    runner.invoke(app, ["user", "create", "lead@example.com", "--db", db])
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "name": "x",
                "schema": {"questions": [{"name": "q", "kind": "rating", "min": 5, "max": 1}]},
            }
        )
    )
    result = runner.invoke(
        app, ["project", "create", str(spec), "--owner", "lead@example.com", "--db", db]
    )
    assert result.exit_code == 2
    assert (
        "schema.questions[0]" in result.output and "max must be greater than min" in result.output
    )
    spec.write_text("{not json")
    broken = runner.invoke(
        app, ["project", "create", str(spec), "--owner", "lead@example.com", "--db", db]
    )
    assert broken.exit_code == 2
    assert "spec.json: not valid JSON" in broken.output


def test_spec_and_file_mistakes_are_one_line_naming_the_file(db: str, tmp_path: Path) -> None:
    assert runner.invoke(app, ["user", "create", "lead@example.com", "--db", db]).exit_code == 0
    owner = ["--owner", "lead@example.com", "--db", db]
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: p\nschema:\n  questions:\n    - {name: ok, kind: choice, options: [yes, no]}\n"
    )
    no_owner = runner.invoke(app, ["project", "create", str(spec), "--db", db])
    assert no_owner.output == "error: --owner is required: the email of the project's first owner\n"
    assert runner.invoke(app, ["project", "create", str(spec), *owner]).output == "1\n"
    spec.write_text("name: p\nschema: [\n")
    broken = runner.invoke(app, ["project", "create", str(spec), *owner])
    assert broken.output.startswith(f"error: {spec}: not valid YAML at line 3: expected")
    spec.write_text("name: p\n")
    bare = runner.invoke(app, ["project", "create", str(spec), *owner])
    assert bare.output == f"error: {spec}: no schema: a project needs one, {{questions: [...]}}\n"
    missing = runner.invoke(app, ["import", "1", str(tmp_path / "none.csv"), "--db", db])
    assert missing.output == f"error: {tmp_path / 'none.csv'}: No such file or directory\n"
    tasks = tmp_path / "tasks.csv"
    tasks.write_text("external_id,text\na,1\na,2\n")
    repeated = runner.invoke(app, ["import", "1", str(tasks), "--db", db])
    assert repeated.output.startswith(f"error: {tasks}: 1 problem")
    assert (
        runner.invoke(app, ["import", "2", str(tasks), "--db", db]).output
        == "error: no project 2\n"
    )
    for result in (no_owner, broken, bare, missing, repeated):
        assert result.exit_code == 2


def test_duplicate_user_is_refused(db: str) -> None:
    assert runner.invoke(app, ["user", "create", "a@example.com", "--db", db]).exit_code == 0
    again = runner.invoke(app, ["user", "create", "A@example.com", "--db", db])
    assert again.exit_code == 2
    assert "already exists" in again.output


def test_migrate_says_what_it_did(db: str) -> None:
    from alembic.script import ScriptDirectory

    from quorum.db.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    first = runner.invoke(app, ["migrate", "--db", db])
    assert (first.exit_code, first.output) == (0, f"database created (schema {head})\n")
    again = runner.invoke(app, ["migrate", "--db", db])
    assert again.output == f"database is up to date (schema {head})\n"


def test_a_database_from_a_newer_quorum_is_one_line(db: str, tmp_path: Path) -> None:
    assert runner.invoke(app, ["migrate", "--db", db]).exit_code == 0
    with sqlite3.connect(tmp_path / "cli.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    result = runner.invoke(app, ["migrate", "--db", db])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: the database sqlite:///")
    assert "'9999'" in result.output and "newer" in result.output
    assert result.output.count("\n") == 1


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (
            "mysql://root@localhost/q",
            "mysql://root@localhost/q: Quorum runs on SQLite or PostgreSQL",
        ),
        ("not a url", "'not a url' is not a database URL: use sqlite:///PATH or postgresql://"),
        (
            "postgresql://quorum:secret@127.0.0.1:1/nothing",
            "cannot open the database postgresql://quorum:***@127.0.0.1:1/nothing: ",
        ),
    ],
)
def test_a_database_that_cannot_be_opened_is_one_line(url: str, said: str) -> None:
    for command in (["migrate"], ["export", "1", "--out", "x.jsonl"]):
        result = runner.invoke(app, [*command, "--db", url])
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: " + said), result.output
        assert result.output.count("\n") == 1 and "secret" not in result.output


def test_every_command_has_help() -> None:
    for args in (
        ["serve"],
        ["migrate"],
        ["user", "create"],
        ["token", "create"],
        ["project", "create"],
    ):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, args
        assert "Usage" in result.output
