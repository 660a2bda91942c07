"""The workforce and quality commands on a real SQLite file: good input works, bad input exits 2
with one line and changes nothing."""

import json
from pathlib import Path

from typer.testing import CliRunner

from quorum.cli import app
from quorum.db.engine import Database, make_engine
from quorum.db.models import Role
from quorum.domain import pause, projects, users

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_workforce_and_quality_commands(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/cli.db"
    for email in ("owner@example.com", "ann@example.com"):
        assert run("user", "create", email, "--db", db)[0] == 0
    code, out = run(
        "workforce", "set", "ann@example.com", "--tier", "2", "--domain", "medicine=4", "--db", db
    )
    assert code == 0 and out.strip() == "ann@example.com: tier 2, project rate, medicine=4"
    code, out = run("workforce", "set", "ann@example.com", "--domain", "medicine=9", "--db", db)
    assert (
        code == 2
        and out.strip() == "error: domains.medicine: a level is a whole number from 1 to 5"
    )
    code, out = run("workforce", "list", "--domain", "medicine", "--json", "--db", db)
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [
        {"email": "ann@example.com", "tier": 2, "pay_rate_cents": None, "domains": {"medicine": 4}}
    ]
    engine = make_engine(db)
    with Database(engine).session(write=True) as session:
        owner = users.get_by_email(session, "owner@example.com")
        project = projects.create(
            session,
            owner,
            name="p",
            schema={"questions": [{"name": "q", "kind": "choice", "options": ["a", "b"]}]},
        )
        projects.add_member(session, project, "ann@example.com", Role.annotator)
        annotator = users.get_by_email(session, "ann@example.com")
        pause.pause(session, project.id, annotator.id, "by an owner: test")
        session.commit()
        project_id = project.id
    engine.dispose()
    code, out = run("quality", "report", str(project_id), "--json", "--db", db)
    assert code == 0
    rows = {a["user_id"]: a for a in json.loads(out)["annotators"]}
    assert rows[annotator.id]["paused"] and rows[annotator.id]["labels_excluded"]
    args = ("quality", "unpause", str(project_id), "ann@example.com", "--by", "owner@example.com")
    assert run(*args, "--db", db) == (0, f"ann@example.com may label project {project_id} again\n")
    code, out = run(*args, "--db", db)
    assert code == 2 and out.strip() == "error: this annotator is not paused in this project"
    code, out = run(
        "quality",
        "reset-qualification",
        str(project_id),
        "ann@example.com",
        "--by",
        "owner@example.com",
        "--db",
        db,
    )
    assert code == 2 and "no graded qualification" in out
