"""Requester pages: the schema editor's live check, creating a project, importing, the dashboard
and members."""

import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person
from tests.web.conftest import Visitor

from quorum.db.models import Membership, Project, Role, Task
from quorum.domain import aggregation, assignments, dashboard, pause
from quorum.domain.projects import schema_of
from quorum.truth import DawidSkene, apply_temperature, fit_temperature

Visit = Callable[[Person | None], Visitor]
YAML_SCHEMA = """questions:
  - name: verdict
    kind: choice
    options: [correct, wrong]
"""


def test_the_editor_checks_json_and_yaml_as_you_type(visit: Visit, make: Factory) -> None:
    visitor = visit(make.person("rhea"))
    visitor.get("/projects/new")
    good = visitor.fetch("/projects/new/check", {"schema": YAML_SCHEMA, "policy": '{"overlap": 2}'})
    assert good.status_code == 200
    body = good.json()
    assert body["schema"] == {"ok": True, "problems": []} and body["policy"]["ok"]
    assert 'data-kind="choice"' in body["preview"] and "<kbd>2</kbd>" in body["preview"]
    broken = visitor.fetch(
        "/projects/new/check", {"schema": "questions:\n  - name: [", "policy": ""}
    )
    [problem] = broken.json()["schema"]["problems"]
    assert problem["line"] == 2 and "YAML" in problem["message"]
    assert broken.json()["preview"] is None
    bad_json = visitor.fetch("/projects/new/check", {"schema": '{"questions": [}', "policy": ""})
    assert bad_json.json()["schema"]["problems"][0]["line"] == 1
    invalid = visitor.fetch(
        "/projects/new/check",
        {
            "schema": "questions:\n  - {name: x, kind: rating, min: 5, max: 1}",
            "policy": "overlap: 0",
        },
    )
    assert "max must be greater than min" in invalid.json()["schema"]["problems"][0]["message"]
    assert invalid.json()["policy"]["problems"][0]["field"] == "policy.overlap"
    yes_no = "questions:\n  - {name: ok, kind: choice, options: [yes, no]}"  # YAML 1.2: text
    checked = visitor.fetch("/projects/new/check", {"schema": yes_no, "policy": ""}).json()
    assert checked["schema"] == {"ok": True, "problems": []}
    assert ">yes<" in checked["preview"] and ">no<" in checked["preview"]


def test_create_a_project_from_the_form(visit: Visit, make: Factory, session: Session) -> None:
    rhea = make.person("rhea")
    visitor = visit(rhea)
    visitor.get("/projects/new")
    refused = visitor.form(
        "/projects/new", {"name": "Checks", "schema": "questions: []", "policy": ""}
    )
    assert refused.status_code == 422 and "not created" in refused.text
    assert 'value="Checks"' in refused.text  # what was typed stays
    reply = visitor.form(
        "/projects/new",
        {
            "name": "Checks",
            "instructions": "Be careful.",
            "schema": YAML_SCHEMA,
            "policy": "overlap: 2",
        },
    )
    assert reply.status_code == 303
    project_id = int(re.fullmatch(r"/projects/(\d+)/import", reply.headers["location"]).group(1))  # type: ignore[union-attr]
    project = session.get(Project, project_id)
    assert project is not None and project.policy["overlap"] == 2
    assert project.schema["questions"][0]["options"] == ["correct", "wrong"]
    role = session.scalar(select(Membership.role).where(Membership.project_id == project_id))
    assert role is Role.owner


def test_import_reports_bad_lines_and_imports_nothing(
    visit: Visit, make: Factory, session: Session
) -> None:
    owner = make.person("rhea")
    project = make.project(owner)
    visitor = visit(owner)
    visitor.get(f"/projects/{project.id}/import")
    bad = b'{"data": {"q": 1}}\n{"data": \n{"data": {"q": 3}, "gold": {"label": "maybe"}}\n'
    reply = visitor.form(
        f"/projects/{project.id}/import",
        files={"file": ("tasks.ndjson", bad, "application/x-ndjson")},
    )
    assert reply.status_code == 422
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td><code>([^<]+)</code></td>', reply.text)
    assert rows == [("2", "line"), ("3", "gold.label")]
    assert "nothing was imported;" not in reply.text  # each problem once, in the table
    assert session.scalar(select(func.count()).select_from(Task)) == 0
    good = b'[{"data": {"q": 1}, "external_id": "a"}, {"data": {"q": 2}, "external_id": "b"}]'
    reply = visitor.form(
        f"/projects/{project.id}/import", files={"file": ("tasks.json", good, "application/json")}
    )
    assert reply.status_code == 200 and "Imported 2 tasks" in reply.text
    again = visitor.form(
        f"/projects/{project.id}/import",
        {"on_conflict": "skip"},
        files={"file": ("tasks.json", good, "application/json")},
    )
    assert "Imported 0 tasks; skipped 2" in again.text
    unknown = visitor.form(
        f"/projects/{project.id}/import", files={"file": ("tasks.txt", good, "text/plain")}
    )
    assert unknown.status_code == 422 and "cannot tell the format" in unknown.text


def test_the_dashboard_shows_the_figures(visit: Visit, make: Factory, session: Session) -> None:
    owner = make.person("rhea")
    team = [make.person("a"), make.person("b"), make.person("c")]
    project = make.project(owner, policy={"overlap": 3}, members={Role.annotator: team})
    make.tasks(project, [{"data": {"q": i}, "gold": {"label": "yes"}} for i in range(3)])
    for person, answers in zip(
        team, (["yes", "yes", "no"], ["yes", "no", "no"], ["yes", "yes", "yes"]), strict=True
    ):
        for answer in answers:
            lease = assignments.lease(session, project, person.user)
            assert lease is not None
            assignments.submit(session, lease.assignment.id, person.user, {"label": answer})
    page = visit(owner).get(f"/projects/{project.id}/dashboard")
    assert page.status_code == 200
    charts = json.loads(
        re.search(
            r'<script type="application/json" id="chart-data">(.*?)</script>', page.text, re.S
        ).group(1)
    )  # type: ignore[union-attr]
    assert set(charts) == {"throughput", "annotators", "agreement", "confusion-label"}
    assert sum(charts["throughput"]["data"][0]["y"]) == 9
    assert charts["confusion-label"]["data"][0]["z"] == [[6, 3], [0, 0]]  # rows: gold yes, no
    assert 'id="lowest-table"' in page.text and "/vendor/plotly.min.js" in page.text


def test_a_paused_annotators_labels_leave_the_agreement_figures(
    make: Factory, session: Session
) -> None:
    """As in the export: agreement, confusion and the lowest-agreement tasks use the labels that
    count; throughput and labels per annotator keep every label."""
    owner = make.person("rhea")
    team = [make.person("a"), make.person("b"), make.person("spammer")]
    project = make.project(owner, policy={"overlap": 3}, members={Role.annotator: team})
    make.tasks(project, [{"data": {"q": i}, "gold": {"label": "yes"}} for i in range(4)])
    for person, answer in zip(team, ("yes", "yes", "no"), strict=True):
        while lease := assignments.lease(session, project, person.user):
            assignments.submit(session, lease.assignment.id, person.user, {"label": answer})
    before = dashboard.project_overview(session, project)
    assert before.agreement[0].percent == pytest.approx(1 / 3)
    pause.pause(session, project.id, team[2].user.id, "spam", by=owner.user)
    session.commit()
    after = dashboard.project_overview(session, project)
    assert after.agreement[0].percent == 1.0
    assert after.confusions[0].gold == [[8, 0], [0, 0]]  # gold yes: 8 yes, none no
    assert {low.agreement for low in after.lowest} == {1.0}
    assert sum(n for _, n in after.throughput) == 12 and len(after.annotators) == 3
    assert dashboard.agreement(session, project)[0].percent == 1.0  # the stats API's figure


def test_the_dashboard_downloads_a_delivery_with_its_prompt_field(
    visit: Visit, make: Factory, session: Session, tmp_path: Path
) -> None:
    owner, person = make.person("rhea"), make.person("a")
    schema = {"questions": [{"name": "answer", "kind": "text"}]}
    project = make.project(owner, schema, members={Role.annotator: [person]})
    make.tasks(project, [{"data": {"question": "What is 2 + 2?"}}])
    lease = assignments.lease(session, project, person.user)
    assert lease is not None
    assignments.submit(session, lease.assignment.id, person.user, {"answer": "Four."})
    visitor = visit(owner)
    assert 'id="prompt_field"' in visitor.get(f"/projects/{project.id}/dashboard").text
    for field, rows in (("question", 1), ("", 0)):  # blank: the default, `prompt`
        reply = visitor.get(
            f"/projects/{project.id}/export", params={"format": "sft", "prompt_field": field}
        )
        assert reply.status_code == 200
        zipfile.ZipFile(io.BytesIO(reply.content)).extractall(tmp_path / (field or "blank"))
        loaded = datasets.load_from_disk(str(tmp_path / (field or "blank")))
        assert loaded.num_rows == rows
    assert datasets.load_from_disk(str(tmp_path / "question"))["prompt"] == ["What is 2 + 2?"]


def test_progress_leaves_out_the_gold_checks(visit: Visit, make: Factory, session: Session) -> None:
    owner, annotator = make.person("rhea"), make.person("a")
    policy = {"overlap": 1, "gold_rate": 0.0001}  # the checks stay open: the coin never falls
    project = make.project(owner, policy=policy, members={Role.annotator: [annotator]})
    gold = [{"data": {"q": -i}, "gold": {"label": "yes"}} for i in range(3)]
    make.tasks(project, [*gold, {"data": {"q": 1}}, {"data": {"q": 2}}])
    while (lease := assignments.lease(session, project, annotator.user)) is not None:
        assignments.submit(session, lease.assignment.id, annotator.user, {"label": "yes"})
    page = visit(owner).get(f"/projects/{project.id}/dashboard").text
    assert "<b>2 / 2</b><span>tasks complete (100%)" in page
    assert "gold checks not counted: 3" in page
    listing = visit(annotator).get("/projects").text
    assert 'aria-label="2 of 2 tasks complete"' in listing  # the annotator learns no gold count


def test_the_dashboard_offers_only_the_deliveries_the_project_can_make(
    visit: Visit, make: Factory
) -> None:
    owner = make.person("rhea")
    choice = make.project(owner)  # one choice question: no preference, no text
    formats = re.findall(
        r'<option value="(\w+)">', visit(owner).get(f"/projects/{choice.id}/dashboard").text
    )
    assert [f for f in formats if f in {"jsonl", "csv", "parquet", "hf", "dpo", "sft"}] == [
        "jsonl",
        "csv",
        "parquet",
        "hf",
    ]
    both = {"questions": [
        {"name": "better", "kind": "preference", "options": ["response_a", "response_b"]},
        {"name": "answer", "kind": "text"},
    ]}  # fmt: skip
    rich = make.project(owner, both)
    page = visit(owner).get(f"/projects/{rich.id}/dashboard").text
    assert '<option value="dpo">' in page and '<option value="sft">' in page


def test_a_dashboard_without_labels_draws_no_empty_heatmap(visit: Visit, make: Factory) -> None:
    owner = make.person("rhea")
    project = make.project(owner, policy={"overlap": 2})
    make.tasks(project, [{"data": {"q": i}, "gold": {"label": "yes"}} for i in range(2)])
    page = visit(owner).get(f"/projects/{project.id}/dashboard")
    assert page.status_code == 200
    confusion = page.text.split("<h2>Confusion</h2>")[1].split("</section>")[0]
    assert 'id="chart-confusion-label"' not in confusion
    assert "No task has two labels yet." in confusion


def test_plotly_is_served_from_the_package(client: object) -> None:
    from fastapi.testclient import TestClient

    assert isinstance(client, TestClient)
    reply = client.get("/vendor/plotly.min.js")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/javascript")
    assert b"plotly.js" in reply.content[:2000]


def test_owners_manage_members(visit: Visit, make: Factory, session: Session) -> None:
    owner, newcomer = make.person("rhea"), make.person("new")
    project = make.project(owner)
    visitor = visit(owner)
    visitor.get(f"/projects/{project.id}/members")
    visitor.form(
        f"/projects/{project.id}/members", {"email": newcomer.user.email, "role": "reviewer"}
    )
    assert session.get(Membership, (project.id, newcomer.user.id)).role is Role.reviewer  # type: ignore[union-attr]
    missing = visitor.form(
        f"/projects/{project.id}/members", {"email": "ghost@example.com", "role": "annotator"}
    )
    assert "no user with email" in visitor.get(missing.headers["location"]).text
    last_owner = visitor.form(f"/projects/{project.id}/members/{owner.user.id}/remove")
    assert "at least one owner" in visitor.get(last_owner.headers["location"]).text
    visitor.form(f"/projects/{project.id}/members/{newcomer.user.id}/remove")
    session.expire_all()
    assert session.get(Membership, (project.id, newcomer.user.id)) is None


def test_the_lowest_agreement_tasks_show_the_calibrated_confidence(
    visit: Visit, make: Factory, session: Session
) -> None:
    # 14 tasks, 12 of them gold; annotators a and b are both wrong on 3 of them. Not clamped,
    # every task shows the crowd's confidence tempered by the temperature fitted on the gold
    # tasks' blind Dawid-Skene posteriors.
    owner = make.person("rhea")
    team = [make.person("a"), make.person("b"), make.person("c")]
    project = make.project(owner, policy={"overlap": 3}, members={Role.annotator: team})
    truth = ["yes" if i % 2 else "no" for i in range(14)]
    make.tasks(
        project,
        [
            {"data": {"q": i}, **({"gold": {"label": truth[i]}} if i < 12 else {})}
            for i in range(14)
        ],
    )
    wrong = [lambda i: i % 5 == 0, lambda i: i % 5 == 0 or i % 7 == 3, lambda i: i % 3 == 1]
    for person, errs in zip(team, wrong, strict=True):
        while lease := assignments.lease(session, project, person.user):
            i = lease.task.data["q"]
            answer = {"yes": "no", "no": "yes"}[truth[i]] if errs(i) else truth[i]
            assignments.submit(session, lease.assignment.id, person.user, {"label": answer})
    labels = aggregation.load_labels(session, project.id, schema_of(project))
    tasks, task = np.unique(labels.task_id, return_inverse=True)
    _, worker = np.unique(labels.worker_id, return_inverse=True)
    said = np.array(labels.answers.column("label").to_pylist()) == "yes"  # classes: no, yes
    blind = DawidSkene().fit(task, worker, said.astype(np.int64), n_classes=2).probas_
    data: dict[int, dict[str, int]] = dict(session.execute(select(Task.id, Task.data)).all())
    index = np.array([data[t]["q"] for t in tasks.tolist()])
    gold, is_yes = index < 12, np.array([truth[i] == "yes" for i in index], np.int64)
    tempered = apply_temperature(blind, fit_temperature(blind[gold], is_yes[gold]))
    expected = dict(zip(tasks.tolist(), tempered.max(axis=1).tolist(), strict=True))
    lowest = dashboard.project_overview(session, project).lowest
    assert len(lowest) == 10
    for low in lowest:
        assert low.confidence == pytest.approx(expected[low.task_id], abs=1e-9)
    rows = np.searchsorted(tasks, [low.task_id for low in lowest])
    assert blind.max(axis=1)[rows].min() > 0.999  # raw Dawid-Skene: all near 100%
    assert max(low.confidence or 1.0 for low in lowest) < 0.8  # 3 of 12 gold answers wrong
    page = visit(owner).get(f"/projects/{project.id}/dashboard").text
    assert f'<td class="num">{lowest[0].confidence * 100:.0f}%</td>' in page
