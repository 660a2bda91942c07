"""Vendor audits: deliveries all or nothing, stratified samples routed to experts, the report."""

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from tests.audit.conftest import CLASSES, World, make_world, ndjson
from tests.conftest import Factory
from typer.testing import CliRunner

from quorum.cli import app
from quorum.db.engine import Database, make_engine
from quorum.db.models import AuditSample, Task, VendorLabel
from quorum.domain import assignments, audit_report, audits, projects, users
from quorum.domain.errors import Invalid
from quorum.domain.projects import schema_of
from quorum.domain.questions import QuestionSchema
from quorum.domain.tasks import Record, import_tasks
from quorum.io.task_files import read_ndjson
from quorum.io.vendor_files import read_vendor_labels


def records(rows: list[dict[str, object]]) -> list[Record]:
    return list(read_ndjson(io.BytesIO(ndjson(rows))))


def labels_in(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(VendorLabel)) or 0)


def test_a_delivery_is_stored_apart_from_annotations(session: Session, world: World) -> None:
    rows = world.deliver(0.9, seed=1).rows
    result = audits.import_vendor_labels(
        session, world.project, " Acme ", records(rows), price_cents_per_label=12
    )
    assert (result.vendor, result.created) == ("Acme", 120)
    [(vendor, delivered)] = audits.list_vendors(session, world.project)
    assert (vendor.name, vendor.price_cents_per_label, delivered) == ("Acme", 12, 120)
    flat = [{"external_id": "t0", "animal": "dog"}]  # answers at the top level work too
    assert audits.import_vendor_labels(session, world.project, "Flat", records(flat)).created == 1


def test_a_bad_delivery_names_every_line_and_changes_nothing(
    session: Session, world: World
) -> None:
    audits.import_vendor_labels(
        session, world.project, "Acme", records(world.deliver(1, 1).rows[:1])
    )
    before = labels_in(session)
    rows = [
        {"external_id": "t1", "answers": {"animal": "cat"}},
        {"external_id": "nope", "answers": {"animal": "cat"}},
        {"external_id": "t2", "answers": {"animal": "lion"}},
        {"external_id": "t1", "answers": {"animal": "dog"}},
        {"external_id": "t0", "answers": {"animal": "dog"}},
        {"answers": {"animal": "dog"}},
        {"external_id": "t3", "answers": {}},
        {"external_id": "t4", "answers": {"animal": "cat"}, "extra": 1},
    ]
    with pytest.raises(Invalid) as error:
        audits.import_vendor_labels(session, world.project, "Acme", records(rows))
    found = {(d["line"], d["field"]): d["message"] for d in error.value.details}
    assert found == {
        (2, "external_id"): "'nope': no such task in the project",
        (3, "answers.animal"): "must be one of ['cat', 'dog', 'bird']",
        (4, "external_id"): "'t1' repeats line 1",
        (5, "external_id"): "'t0': this vendor delivered it already",
        (6, "external_id"): "required: the task's external_id, text or a number",
        (7, "answers"): "answer at least one question",
        (8, "extra"): "unknown key; a delivered row has external_id and answers",
    }
    assert labels_in(session) == before


def test_csv_and_parquet_deliveries(session: Session, world: World) -> None:
    csv = b"external_id,animal,answer.note\nt0,cat,looks fine\nt1,dog,\n"
    rows = list(read_vendor_labels(io.BytesIO(csv), "csv", _schema(world)))
    assert [r.value for r in rows] == [
        {"external_id": "t0", "answers": {"animal": "cat", "note": "looks fine"}},
        {"external_id": "t1", "answers": {"animal": "dog"}},
    ]
    sink = io.BytesIO()
    pq.write_table(pa.table({"external_id": ["t2"], "answer.animal": ["bird"]}), sink)
    sink.seek(0)
    parquet = read_vendor_labels(sink, "parquet", _schema(world))
    audits.import_vendor_labels(session, world.project, "Acme", [*rows, *parquet])
    assert labels_in(session) == 3


def _schema(world: World) -> QuestionSchema:
    return schema_of(world.project)


def test_the_sample_is_stratified_sized_and_topped_up(session: Session, make: Factory) -> None:
    world = make_world(make, 400)
    delivery = world.deliver(0.8, seed=2)
    audits.import_vendor_labels(session, world.project, "Acme", records(delivery.rows))
    [first] = audits.draw_sample(session, world.project, width=0.2, seed=1)
    assert first.question == "animal" and first.delivered == 400
    assert first.total == first.drawn >= first.target > 0
    drawn = session.execute(select(AuditSample.stratum, func.count()).group_by(AuditSample.stratum))
    by_class = {stratum.strip('"'): n for stratum, n in drawn}
    given = [row["answers"]["animal"] for row in delivery.rows]
    for label in CLASSES:  # in proportion to what the vendor gave, within rounding and floors
        assert abs(by_class[label] - first.total * given.count(label) / 400) <= 2
    again = audits.draw_sample(session, world.project, width=0.2, seed=5)[0]
    assert again.drawn == 0 and again.total == first.total  # the same width needs nothing more
    wider = audits.draw_sample(session, world.project, width=0.1, seed=5)[0]
    assert wider.total == first.total + wider.drawn and wider.total >= wider.target
    sampled = set(session.scalars(select(AuditSample.task_id)))
    priorities = dict(session.execute(select(Task.id, Task.priority)).all())
    band = range(audits.AUDIT_PRIORITY - audits.AUDIT_BAND, audits.AUDIT_PRIORITY + 1)
    assert all(priorities[t] in band for t in sampled)
    assert {p for t, p in priorities.items() if t not in sampled} == {0}


def test_the_sample_is_handed_out_in_a_random_order(session: Session, make: Factory) -> None:
    """Experts get the sampled tasks in a random order, not in import order, so the tasks checked
    at any point of the audit are a random part of the sample (docs/audits.md)."""
    world = make_world(make, 400)
    rows = world.deliver(0.8, seed=2).rows
    audits.import_vendor_labels(session, world.project, "Acme", records(rows))
    [first] = audits.draw_sample(session, world.project, width=0.2, seed=1)
    expert = world.experts[0].user
    handed = []
    for _ in range(first.total):
        lease = assignments.lease(session, world.project, expert)
        assert lease is not None
        handed.append(lease.assignment.task_id)
        assignments.submit(session, lease.assignment.id, expert, {"animal": "cat"})
    sampled = sorted(session.scalars(select(AuditSample.task_id)))
    assert sorted(handed) == sampled and handed != sampled
    early, late = set(sampled[: len(sampled) // 2]), handed[: len(handed) // 2]
    assert 0.3 < sum(task not in early for task in late) / len(late) < 0.7


def test_the_question_must_be_auditable(session: Session, world: World) -> None:
    with pytest.raises(Invalid, match="text question"):
        audits.draw_sample(session, world.project, question="note")
    with pytest.raises(Invalid, match="no question"):
        audits.draw_sample(session, world.project, question="colour")


def _label_the_sample(session: Session, world: World) -> int:
    """The expert labels what ``next`` gives them, the right answer, until the sample is done:
    sampled tasks come first, and nothing marks them."""
    expert = world.experts[0].user
    sampled = set(session.scalars(select(AuditSample.task_id)))
    external = dict(session.execute(select(Task.id, Task.external_id)).all())
    done = 0
    while (lease := assignments.lease(session, world.project, expert)) is not None:
        if lease.task.id not in sampled:
            break
        answer = {"animal": world.truth[external[lease.task.id]]}
        assignments.submit(session, lease.assignment.id, expert, answer)
        done += 1
    return done


def test_report_before_and_after_the_experts(session: Session, world: World) -> None:
    delivery = world.deliver(0.85, seed=3)
    audits.import_vendor_labels(
        session, world.project, "Acme", records(delivery.rows), price_cents_per_label=10
    )
    audits.draw_sample(session, world.project, width=0.3, seed=3)
    empty = audit_report.report(session, world.project).vendors[0]
    assert (empty.checked, empty.accuracy, empty.wilson) == (0, None, None)
    checked = _label_the_sample(session, world)
    vendor = audit_report.report(session, world.project).vendors[0]
    assert vendor.checked == vendor.sampled == checked > 0
    assert vendor.covered == vendor.delivered  # every class checked: the whole delivery
    assert vendor.wilson and vendor.bootstrap and vendor.kappa is not None
    assert vendor.wilson.low <= vendor.accuracy <= vendor.wilson.high  # type: ignore[operator]
    assert sum(c.checked for c in vendor.classes) == checked
    assert sum(map(sum, vendor.confusion.counts)) == checked
    correct = sum(c.correct for c in vendor.classes)
    diagonal = sum(vendor.confusion.counts[i][i] for i in range(len(vendor.confusion.labels)))
    assert correct == diagonal
    # Classes in the schema's order (cat, dog, bird), as the dashboard's confusion shows them.
    assert vendor.confusion.labels == [c.label for c in vendor.classes] == CLASSES
    assert vendor.cost_per_correct_label_cents == pytest.approx(10 / vendor.accuracy)  # type: ignore[operator]
    assert vendor.estimated_wrong_labels == pytest.approx(120 * (1 - vendor.accuracy))  # type: ignore[operator]


def test_a_report_read_mid_sample_bounds_the_classes_not_checked_yet(
    session: Session, make: Factory
) -> None:
    """The experts have checked only the 2 labels of a small class (put first here; sampled tasks
    go out in a random order). The other 38 labels may be all wrong or all right, and the
    intervals say so."""
    world = make_world(make, 40)
    rows = [
        {"external_id": f"t{i}", "answers": {"animal": "bird" if i < 2 else "cat"}}
        for i in range(40)
    ]
    audits.import_vendor_labels(session, world.project, "Acme", records(rows))
    audits.draw_sample(session, world.project, width=0.3, seed=1)
    first = update(Task).where(Task.external_id.in_(["t0", "t1"]))
    session.execute(first.values(priority=audits.AUDIT_PRIORITY))  # ties go to import order
    expert = world.experts[0].user
    for _ in range(2):
        lease = assignments.lease(session, world.project, expert)
        assert lease is not None and lease.task.external_id in {"t0", "t1"}
        assignments.submit(session, lease.assignment.id, expert, {"animal": "bird"})
    vendor = audit_report.report(session, world.project).vendors[0]
    assert vendor.wilson and vendor.bootstrap and vendor.wrong_labels_interval
    for interval in (vendor.wilson, vendor.bootstrap):
        assert interval.low <= 2 / 40 and interval.high == 1.0
    assert vendor.wrong_labels_interval.high >= 38
    assert (vendor.delivered, vendor.checked, vendor.covered) == (40, 2, 2)
    assert vendor.accuracy == 1.0  # of the one class checked so far


def test_two_vendors_ranked_through_the_api(client: TestClient, make: Factory) -> None:
    """The end-to-end audit: two vendors of known accuracy deliver, the sample is drawn, the
    expert labels it through /next and /submit, and the report ranks the vendors with 95%
    intervals that cover each delivery's true accuracy."""
    world = make_world(make, 300, seed=4)
    owner, expert = world.owner.headers, world.experts[0].headers
    good, poor = world.deliver(0.92, seed=10), world.deliver(0.7, seed=11)
    base = f"/api/v1/projects/{world.project.id}/audit"
    for name, delivery, price in (("Good", good, 20), ("Cheap", poor, 8)):
        reply = client.post(
            f"{base}/deliveries",
            params={"vendor": name, "price_cents_per_label": price},
            content=ndjson(delivery.rows),
            headers={**owner, "Content-Type": "application/x-ndjson"},
        )
        assert reply.status_code == 201, reply.text
    drawn = client.post(f"{base}/sample", json={"width": 0.2, "seed": 7}, headers=owner)
    assert drawn.status_code == 200, drawn.text
    sampled = dict(_sampled_external_ids(client, world))
    while True:
        lease = client.post(f"/api/v1/projects/{world.project.id}/next", headers=expert)
        if lease.status_code == 204 or lease.json()["task"]["id"] not in sampled:
            break
        answer = {"animal": world.truth[sampled[lease.json()["task"]["id"]]]}
        submit = f"/api/v1/assignments/{lease.json()['assignment_id']}/submit"
        assert client.post(submit, json={"answers": answer}, headers=expert).status_code == 200
    report = client.get(base, headers=owner).json()
    assert [v["vendor"] for v in report["vendors"]] == ["Good", "Cheap"]
    for vendor, delivery in zip(report["vendors"], (good, poor), strict=True):
        assert vendor["checked"] == vendor["sampled"]
        for interval in ("wilson", "bootstrap"):
            assert vendor[interval]["low"] <= delivery.accuracy <= vendor[interval]["high"]
    assert client.get(base, headers=expert).status_code == 403


def _sampled_external_ids(client: TestClient, world: World) -> list[tuple[int, str]]:
    tasks = client.get(
        f"/api/v1/projects/{world.project.id}/tasks",
        params={"limit": 1000},
        headers=world.owner.headers,
    ).json()["items"]
    band = audits.AUDIT_PRIORITY - audits.AUDIT_BAND
    return [(t["id"], t["external_id"]) for t in tasks if t["priority"] >= band]


def test_api_delivery_errors_are_422_with_lines(client: TestClient, world: World) -> None:
    reply = client.post(
        f"/api/v1/projects/{world.project.id}/audit/deliveries",
        params={"vendor": "Acme"},
        content=b'{"external_id": "t0", "answers": {"animal": "cat"}}\n{"external_id": "zz"}\n',
        headers={**world.owner.headers, "Content-Type": "application/x-ndjson"},
    )
    assert reply.status_code == 422
    assert reply.json()["error"]["details"][0]["line"] == 2


def test_cli_import_sample_report(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/audit.db"
    runner = CliRunner()
    assert runner.invoke(app, ["migrate", "--db", db]).exit_code == 0
    engine = make_engine(db)
    with Database(engine).session(write=True) as session:
        owner = users.create_user(session, "lead@example.com")
        project = projects.create(session, owner, name="p", schema=_choice(), policy={})
        import_tasks(
            session, project, [Record(i, {"external_id": f"t{i}", "data": {}}) for i in range(30)]
        )
        project_id = project.id
    engine.dispose()
    good = tmp_path / "acme.csv"
    good.write_text("external_id,animal\n" + "".join(f"t{i},cat\n" for i in range(30)))
    imported = runner.invoke(
        app,
        [
            "audit",
            "import",
            str(project_id),
            "--vendor",
            "Acme",
            str(good),
            "--price-cents-per-label",
            "5",
            "--db",
            db,
        ],
    )
    assert imported.exit_code == 0, imported.output
    assert "imported 30 labels of vendor 'Acme'" in imported.output
    bad = tmp_path / "bad.csv"
    bad.write_text("external_id,animal\nt1,cat\nt2,lion\n")
    refused = runner.invoke(
        app, ["audit", "import", str(project_id), "--vendor", "B", str(bad), "--db", db]
    )
    assert refused.exit_code == 2
    assert refused.output.count("\n") == 1 and "line 3" in refused.output
    sampled = runner.invoke(app, ["audit", "sample", str(project_id), "--width", "0.3", "--db", db])
    assert sampled.exit_code == 0 and "Acme:" in sampled.output
    report = runner.invoke(app, ["audit", "report", str(project_id), "--json", "--db", db])
    assert report.exit_code == 0, report.output
    parsed = json.loads(report.output)
    assert parsed["vendors"][0]["vendor"] == "Acme" and parsed["vendors"][0]["checked"] == 0
    table = runner.invoke(app, ["audit", "report", str(project_id), "--db", db])
    assert table.exit_code == 0 and "Acme" in table.output
    assert "95% bootstrap" in table.output  # piped, the headings are not folded to 80 columns


def _choice() -> dict[str, object]:
    return {"questions": [{"name": "animal", "kind": "choice", "options": CLASSES}]}


def test_the_report_is_deterministic_for_a_seed(session: Session, world: World) -> None:
    audits.import_vendor_labels(session, world.project, "Acme", records(world.deliver(0.8, 5).rows))
    audits.draw_sample(session, world.project, width=0.3, seed=1)
    _label_the_sample(session, world)
    one = audit_report.report(session, world.project, seed=1).vendors[0]
    two = audit_report.report(session, world.project, seed=1).vendors[0]
    assert one == two  # deterministic for a seed
    assert np.isfinite(one.accuracy or np.nan)
