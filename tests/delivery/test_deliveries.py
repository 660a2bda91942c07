"""Deliveries: Hugging Face datasets (hf, dpo, sft) that load with `datasets`, typed, with
provenance on every row and a dataset card; through the domain, the API and the CLI."""

import io
import zipfile
from pathlib import Path
from typing import Any

import datasets
import pytest
from fastapi.testclient import TestClient
from tests.conftest import Factory
from tests.delivery.conftest import Demo
from typer.testing import CliRunner

from quorum.cli import app
from quorum.db.engine import Database, make_engine
from quorum.db.models import ReviewDecision, ReviewSource, Role
from quorum.domain import assignments, deliveries, export, pause, projects, reviews, users
from quorum.domain.errors import Invalid
from quorum.domain.tasks import Record, import_tasks
from quorum.io.delivery_files import write_delivery

PREFERENCE = "Response preference (RLHF)"
SFT = "Expert reference answers (SFT)"


def _prefer(annotator: int, task_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Annotators mostly agree on b; every fourth task is a tie for everyone."""
    if task_id % 4 == 0:
        return {"better": "tie"}
    return {"better": "response_a" if annotator == 2 and task_id % 3 == 0 else "response_b"}


def _deliver(demo: Demo, name: str, kind: str, out: Path, **options: Any) -> datasets.Dataset:
    prepared = export.prepare(demo.session, demo.projects[name], method="ds")
    written = write_delivery(deliveries.prepare(prepared, kind, **options), out)
    loaded = datasets.load_from_disk(str(out))
    assert isinstance(loaded, datasets.Dataset) and loaded.num_rows == written
    return loaded


def test_dpo_export_of_the_demo_preference_project_loads(demo_world: Demo, tmp_path: Path) -> None:
    demo_world.label(PREFERENCE, _prefer)
    pairs = _deliver(demo_world, PREFERENCE, "dpo", tmp_path / "dpo")
    tasks = {t.id: t for t in demo_world.session.scalars(_tasks(demo_world, PREFERENCE))}
    answers = _aggregated(demo_world, PREFERENCE)  # gold tasks answer their gold
    ties = sum(1 for answer in answers.values() if answer == "tie")
    assert 0 < ties and pairs.num_rows == len(tasks) - ties > 0
    assert pairs.features["prompt"] == datasets.Value("string")
    assert pairs.features["confidence"] == datasets.Value("float64")
    annotation = pairs.features["annotations"].feature
    assert annotation["tier"] == datasets.Value("int64")
    assert annotation["submitted_at"] == datasets.Value("timestamp[us, tz=UTC]")
    for row in pairs:
        data, preferred = tasks[row["task_id"]].data, answers[row["task_id"]]
        other = "response_a" if preferred == "response_b" else "response_b"
        assert (row["prompt"], row["chosen"], row["rejected"]) == (
            data["prompt"], data[preferred], data[other],
        )  # fmt: skip
        assert 0.5 < row["confidence"] <= 1 and row["method"] == "ds"
        assert len(row["annotations"]) == 3
        assert {a["annotator"][:2] for a in row["annotations"]} == {"a_"}  # pseudonyms only
        assert {a["tier"] for a in row["annotations"]} == {1, 2, 3}
    card = (tmp_path / "dpo" / "README.md").read_text()
    assert f"- rows: {pairs.num_rows}" in card and f"- left out (tie): {ties}" in card
    assert "| response_b |" in card and "## Agreement" in card and "Dawid–Skene" in card
    # the demo's three annotators by their profiles' domains
    assert "| medicine | 3 |" in card and "| law | 1 |" in card and "| software | 1 |" in card


def _aggregated(demo: Demo, name: str) -> dict[int, Any]:
    aggregate = export.prepare(demo.session, demo.projects[name]).aggregate
    column = aggregate.questions["better"].answer.to_pylist()
    return dict(zip(aggregate.task_id.tolist(), column, strict=True))


def _tasks(demo: Demo, name: str) -> Any:
    from sqlalchemy import select

    from quorum.db.models import Task

    return select(Task).where(Task.project_id == demo.projects[name].id)


def test_hf_delivery_keeps_every_task_typed(demo_world: Demo, tmp_path: Path) -> None:
    demo_world.label(PREFERENCE, _prefer)
    rows = _deliver(demo_world, PREFERENCE, "hf", tmp_path / "hf")
    assert rows.num_rows == 12
    assert rows.features["answers"]["better"] == datasets.Value("string")
    assert rows.features["confidence"]["better"] == datasets.Value("float64")
    assert rows.features["method"] == datasets.Value("string")
    first = rows[0]
    assert first["n_labels"] == 3 and len(first["annotations"]) == 3
    assert all(a["tier"] in (1, 2, 3) for a in first["annotations"])


def test_sft_keeps_accepted_answers_and_corrections(demo_world: Demo, tmp_path: Path) -> None:
    def write(annotator: int, task_id: int, data: dict[str, Any]) -> dict[str, Any]:
        return {"reference_answer": f"Answer {annotator} for task {task_id}, with enough words."}

    labelled = demo_world.label(SFT, write)
    project, session = demo_world.projects[SFT], demo_world.session
    verdicts = [ReviewDecision.rejected, ReviewDecision.corrected, ReviewDecision.accepted]
    for annotation, decision in zip(labelled, verdicts, strict=False):
        review = reviews.send_to_review(session, annotation, source=ReviewSource.sampled)
        correction = {"reference_answer": "A reviewer's better answer, long enough to pass."}
        reviews.decide(
            session, project, Role.reviewer, review.id, demo_world.reviewer, decision=decision,
            comment="not right" if decision is ReviewDecision.rejected else "",
            answers=correction if decision is ReviewDecision.corrected else None,
        )  # fmt: skip
    pairs = _deliver(demo_world, SFT, "sft", tmp_path / "sft")
    assert pairs.num_rows == len(labelled) - 1  # the rejected answer is left out
    by_source = {row["source"]: row for row in pairs if row["confidence"] == 1.0}
    assert by_source["reviewer correction"]["completion"].startswith("A reviewer's better")
    assert by_source["annotator"]["review_status"] == "accepted"
    assert all(row["prompt"] and row["completion"] for row in pairs)
    assert sum(row["confidence"] is None for row in pairs) == len(labelled) - 3


def test_sft_leaves_out_paused_annotators_and_later_labels(
    demo_world: Demo, tmp_path: Path
) -> None:
    """The SFT rows are the export's labels: a paused annotator's answers are left out as from
    the aggregate, and an answer submitted after the export was prepared is not in it."""

    def write(annotator: int, task_id: int, data: dict[str, Any]) -> dict[str, Any]:
        return {"reference_answer": f"Answer {annotator} for task {task_id}, with enough words."}

    labelled = demo_world.label(SFT, write)
    project, session = demo_world.projects[SFT], demo_world.session
    paused = demo_world.annotators[0]
    pause.pause_by_owner(session, project.id, paused.id, "copies answers", by=demo_world.owner)
    prepared = export.prepare(session, project, method="ds")
    late = demo_world.annotators[1]
    make_tasks = [Record(1, {"data": {"prompt": "A question asked after the export."}})]
    import_tasks(session, project, make_tasks)
    lease = assignments.lease(session, project, late)
    assert lease is not None
    assignments.submit(
        session,
        lease.assignment.id,
        late,
        {"reference_answer": "Written after the export was prepared, so not in it."},
    )
    write_delivery(deliveries.prepare(prepared, "sft"), tmp_path / "sft")
    rows = datasets.load_from_disk(str(tmp_path / "sft"))
    assert paused.pseudonym not in set(rows["annotator"])
    kept = [a for a in labelled if a.user_id != paused.id]
    assert rows.num_rows == len(kept) > 0
    card = (tmp_path / "sft" / "README.md").read_text()
    assert f"(rejected in review and paused annotators' left out): {len(kept)}" in card
    assert "not of an annotator paused in the project" in card


def test_a_delivery_the_project_cannot_make_is_refused(demo_world: Demo) -> None:
    prepared = export.prepare(demo_world.session, demo_world.projects[SFT])
    with pytest.raises(Invalid, match="preference question"):
        deliveries.prepare(prepared, "dpo")
    prepared = export.prepare(demo_world.session, demo_world.projects[PREFERENCE])
    with pytest.raises(Invalid, match="text question"):
        deliveries.prepare(prepared, "sft")


def test_api_sends_a_zip_or_refuses_before_sending(
    client: TestClient, demo_world: Demo, make: Factory, tmp_path: Path
) -> None:
    demo_world.label(PREFERENCE, _prefer)
    _, token = users.create_token(demo_world.session, demo_world.owner, "t")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/projects/{demo_world.projects[PREFERENCE].id}/export"
    reply = client.get(url, params={"format": "dpo"}, headers=headers)
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/zip"
    assert 'filename="project-' in reply.headers["content-disposition"]
    zipfile.ZipFile(io.BytesIO(reply.content)).extractall(tmp_path / "unzipped")
    ties = list(_aggregated(demo_world, PREFERENCE).values()).count("tie")
    assert datasets.load_from_disk(str(tmp_path / "unzipped")).num_rows == 12 - ties
    assert (tmp_path / "unzipped" / "README.md").exists()
    sft_url = f"/api/v1/projects/{demo_world.projects[SFT].id}/export"
    refused = client.get(sft_url, params={"format": "dpo"}, headers=headers)
    assert refused.status_code == 422 and "preference" in refused.json()["error"]["message"]


def test_the_api_takes_the_prompt_field(
    client: TestClient, demo_world: Demo, tmp_path: Path
) -> None:
    """As the CLI's --prompt-field: the SFT demo's tasks hold a `domain` field beside `prompt`."""

    def write(annotator: int, task_id: int, data: dict[str, Any]) -> dict[str, Any]:
        return {"reference_answer": f"Answer {annotator} for task {task_id}, with enough words."}

    labelled = demo_world.label(SFT, write)
    _, token = users.create_token(demo_world.session, demo_world.owner, "t")
    url = f"/api/v1/projects/{demo_world.projects[SFT].id}/export"
    for field in ("domain", "nowhere"):
        reply = client.get(
            url,
            params={"format": "sft", "prompt_field": field},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert reply.status_code == 200
        zipfile.ZipFile(io.BytesIO(reply.content)).extractall(tmp_path / field)
    rows = datasets.load_from_disk(str(tmp_path / "domain"))
    assert rows.num_rows == len(labelled)
    assert set(rows["prompt"]) <= {"medicine", "law", "software", "finance"}
    assert datasets.load_from_disk(str(tmp_path / "nowhere")).num_rows == 0
    card = (tmp_path / "nowhere" / "README.md").read_text()
    assert f"left out (no prompt): {len(labelled)}" in card


def test_cli_writes_a_directory_or_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/cli.db"
    runner = CliRunner()
    assert runner.invoke(app, ["migrate", "--db", db]).exit_code == 0
    engine = make_engine(db)
    schema = {"questions": [{"name": "better", "kind": "preference", "options": ["a", "b"]}]}
    with Database(engine).session(write=True) as session:
        owner = users.create_user(session, "lead@example.com")
        project = projects.create(session, owner, name="p", schema=schema, policy={})
        task = {"data": {"prompt": "hi", "a": "hello", "b": "hey"}}
        import_tasks(session, project, [Record(1, task)])
        project_id = project.id
    engine.dispose()
    out = tmp_path / "pairs"
    done = runner.invoke(
        app, ["export", str(project_id), "--format", "dpo", "--out", str(out), "--db", db]
    )
    assert done.exit_code == 0, done.output
    assert "exported 0 rows" in done.output and (out / "README.md").exists()
    again = runner.invoke(
        app, ["export", str(project_id), "--format", "dpo", "--out", str(out), "--db", db]
    )
    assert again.exit_code == 2 and "not an empty directory" in again.output
    sft = runner.invoke(
        app,
        ["export", str(project_id), "--format", "sft", "--out", str(tmp_path / "s"), "--db", db],
    )
    assert sft.exit_code == 2 and "text question" in sft.output
    assert not (tmp_path / "s").exists() and not list(tmp_path.glob(".s.*"))


@pytest.mark.parametrize("kind", deliveries.DELIVERY_KINDS)
def test_an_empty_delivery_loads_with_its_features(
    make: Factory, tmp_path: Path, kind: str
) -> None:
    """A delivery without rows (nothing labelled yet, or every row filtered out) still loads:
    `datasets` writes no data file at all for zero rows unless told to write one."""
    schema = {
        "questions": [
            {"name": "better", "kind": "preference", "options": ["a", "b"]},
            {"name": "why", "kind": "text", "required": False},
        ]
    }
    project = make.project(make.person("lead"), schema)
    make.tasks(project, [{"data": {"prompt": "hi", "a": "hello", "b": "hey"}}])
    nothing_complete = export.ExportFilter(complete_only=True)
    prepared = export.prepare(make.session, project, filters=nothing_complete)
    out = tmp_path / kind
    assert write_delivery(deliveries.prepare(prepared, kind), out) == 0
    loaded = datasets.load_from_disk(str(out))
    assert isinstance(loaded, datasets.Dataset) and loaded.num_rows == 0
    assert loaded.features["task_id"] == datasets.Value("int64")
    assert (out / "README.md").exists()
