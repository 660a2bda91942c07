"""A reviewer rejects and corrects with the keyboard; a requester creates a project, imports a
file with a bad line, then a good one, and downloads an export."""

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.web.browser.conftest import Server, SignIn, shoot

from quorum.db.models import Annotation, Project, Review, ReviewStatus, Task
from quorum.domain import assignments, users

pytestmark = pytest.mark.browser
CHOICE = {"questions": [{"name": "verdict", "kind": "choice", "options": ["correct", "wrong"]}]}


def _labelled(server: Server, count: int) -> tuple[int, list[int]]:
    """A project with ``count`` tasks that annotator1 labelled 'correct', via the domain."""
    project_id = server.project(CHOICE, [{"data": {"claim": f"Claim {i}"}} for i in range(count)])
    ids = []
    with server.session() as session:
        project = session.get(Project, project_id)
        annotator = users.get_by_email(session, "annotator1@example.com")
        assert project is not None
        for _ in range(count):
            lease = assignments.lease(session, project, annotator)
            assert lease is not None
            note = assignments.submit(
                session, lease.assignment.id, annotator, {"verdict": "correct"}
            )
            ids.append(note.id)
    return project_id, ids


def test_a_reviewer_rejects_and_corrects_with_the_keyboard(server: Server, sign_in: SignIn) -> None:
    project_id, (first, second) = _labelled(server, 2)
    owner = sign_in("requester@example.com")
    owner.goto(f"/projects/{project_id}/annotations")
    for annotation_id in (first, second):
        owner.fill(f"#reason-{annotation_id}", "spot check")
        owner.click(f"#reason-{annotation_id} ~ button")
        owner.wait_for_selector(".flash-ok")
    shoot(owner, "annotations")

    reviewer = sign_in("reviewer@example.com")
    reviewer.goto(f"/projects/{project_id}/review")
    reviewer.wait_for_selector("#review")
    shoot(reviewer, "review")
    reviewer.keyboard.press("r")
    reviewer.keyboard.type("The claim is wrong: see the guideline on dosages.")
    reviewer.keyboard.press("Control+Enter")
    reviewer.wait_for_selector(".flash-ok >> text=Rejected")
    reviewer.keyboard.press("c")  # the next one: correct it to "wrong"
    reviewer.keyboard.press("2")
    reviewer.keyboard.press("Control+Enter")
    reviewer.wait_for_selector(".flash-ok >> text=Corrected")
    shoot(reviewer, "review-empty")
    with server.session() as session:
        rows = session.execute(
            select(
                Annotation.id, Annotation.review_status, Review.comment, Review.corrected_answers
            )
            .join(Review, Review.annotation_id == Annotation.id)
            .where(Annotation.id.in_([first, second]))
            .order_by(Annotation.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        (first, ReviewStatus.rejected, "The claim is wrong: see the guideline on dosages.", None),
        (second, ReviewStatus.corrected, "", {"verdict": "wrong"}),
    ]
    annotator = sign_in("annotator1@example.com")
    assert "see the guideline on dosages" in annotator.inner_text("main")


def test_a_requester_creates_imports_and_exports(
    server: Server, sign_in: SignIn, tmp_path: Path
) -> None:
    page = sign_in("requester@example.com")
    page.goto("/projects/new")
    page.fill("#name", "Fact checks")
    page.fill("#instructions", "Is the claim correct?")
    page.fill(
        "#schema", "questions:\n  - name: verdict\n    kind: choice\n    options: [correct, wrong\n"
    )
    page.wait_for_selector("#schema-status.bad")
    assert "line" in page.inner_text("#schema-status")
    page.fill(
        "#schema",
        "questions:\n  - name: verdict\n    kind: choice\n    options: [correct, wrong]\n",
    )
    page.wait_for_selector("#schema-status.ok")
    page.wait_for_selector("#preview fieldset[data-kind=choice]")
    shoot(page, "project-new")
    page.click("button[type=submit]:has-text('Create project')")
    page.wait_for_url("**/import")
    bad = (
        b'{"data": {"claim": "ok"}}\n{"data": {"claim": "broken"}\n'
        b'{"data": {"claim": "x"}, "gold": {"verdict": "maybe"}}\n'
    )
    page.set_input_files(
        "#file", {"name": "tasks.ndjson", "mimeType": "application/x-ndjson", "buffer": bad}
    )
    page.click("button:has-text('Import')")
    page.wait_for_selector("#import-problems")
    problems = page.inner_text("#import-problems")
    assert "Nothing was imported" in problems and "gold.verdict" in problems
    rows = page.locator("#import-problems tbody tr")
    assert rows.nth(0).inner_text().startswith("2") and rows.nth(1).inner_text().startswith("3")
    shoot(page, "import-problems")
    good = "\n".join(
        json.dumps({"external_id": f"c{i}", "data": {"claim": f"Claim {i}"}}) for i in range(3)
    )
    page.set_input_files(
        "#file",
        {"name": "tasks.jsonl", "mimeType": "application/x-ndjson", "buffer": good.encode()},
    )
    page.click("button:has-text('Import')")
    page.wait_for_selector("#import-result")
    assert "Imported 3 tasks" in page.inner_text("#import-result")
    project_id = int(page.url.split("/")[-2])
    with server.session() as session:
        assert len(session.scalars(select(Task).where(Task.project_id == project_id)).all()) == 3
    page.goto(f"/projects/{project_id}/dashboard")
    page.wait_for_selector("#chart-data", state="attached")
    with page.expect_download() as download:
        page.click("#export-button")
    target = tmp_path / "export.jsonl"
    download.value.save_as(target)
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert sorted(r["external_id"] for r in rows) == ["c0", "c1", "c2"]
