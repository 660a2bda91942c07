"""The quality loop and the workforce on pages: hidden gold that no page gives away, the owner's
quality panel (trust intervals, qualification results, pauses with their reasons, un-pause and
reset), profiles, an annotator's own accuracy and standing, gold feedback, flag reasons."""

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person
from tests.web.conftest import Visitor

from quorum.db.engine import Database
from quorum.db.models import (
    Annotation,
    Assignment,
    Project,
    ReviewDecision,
    ReviewSource,
    Role,
    Task,
    User,
)
from quorum.db.types import utcnow
from quorum.domain import assignments, quality_jobs, reviews, spam, workforce
from quorum.domain.reviews import ToReview
from quorum.domain.trust import Trust
from quorum.web import quality as web_quality

Visit = Callable[[Person | None], Visitor]
SECRET = "SECRET-GOLD-NOTE"
SCHEMA = {
    "questions": [
        {"name": "label", "kind": "choice", "options": ["alpha", "beta"]},
        {"name": "note", "kind": "text", "required": False},
    ]
}


def sweep(database: Database, session: Session) -> None:
    """One pass of the quality loop (grading, flags, auto-pause), as the server would run it."""
    quality_jobs.sweep(database)
    session.expire_all()


def gold_world(
    make: Factory, policy: dict[str, Any], *, real: int = 1, gold: int = 1
) -> tuple[Person, Person, Person, Project]:
    """An owner, a reviewer and an annotator; real tasks, then gold tasks with the same data
    (imported as a block after them, so a task id alone would tell them apart)."""
    owner, reviewer, annotator = make.person("owner"), make.person("rev"), make.person("ann")
    members = {Role.reviewer: [reviewer], Role.annotator: [annotator]}
    project = make.project(owner, SCHEMA, policy, members=members)
    make.tasks(project, [{"data": {"text": "the same text"}} for _ in range(real)])
    reference = {"label": "beta", "note": SECRET}
    make.tasks(project, [{"data": {"text": "the same text"}, "gold": reference}] * gold)
    return owner, reviewer, annotator, project


def is_gold(session: Session, assignment_id: int) -> bool:
    task = session.scalar(
        select(Task)
        .join(Assignment, Assignment.task_id == Task.id)
        .where(Assignment.id == assignment_id)
    )
    assert task is not None
    return task.gold is not None


PER_LEASE = [
    (re.compile(r"/assignments/\d+/"), "/assignments/N/"),
    (re.compile(r"/label/\d+"), "/label/N"),
    (re.compile(r'data-assignment="\d+"'), 'data-assignment="N"'),
    (re.compile(r'data-seconds-left="\d+"'), 'data-seconds-left="S"'),
    (re.compile(r'name="idempotency_key" value="[^"]+"'), 'name="idempotency_key" value="K"'),
    (re.compile(r'name="shown_at" value="\d+"'), 'name="shown_at" value="T"'),
]


def without_lease_ids(html: str) -> str:
    for pattern, replacement in PER_LEASE:
        html = pattern.sub(replacement, html)
    return html


def seen_by_annotator(visitor: Visitor, project: Project) -> dict[str, Any]:
    """Everything the workbench shows of one task: the task fragment, the full page of the
    lease, and the reply to the submission, with the per-lease ids and times taken out."""
    lease = visitor.fetch(f"/projects/{project.id}/label/next")
    assert lease.status_code == 200, lease.text
    body = lease.json()
    page = visitor.get(body["url"])
    assert page.status_code == 200
    submitted = visitor.fetch(
        f"/assignments/{body['assignment_id']}/submit",
        {"answers": {"label": "alpha"}, "duration_ms": 4000},
    )
    assert submitted.status_code == 200, submitted.text
    reply = submitted.json()
    return {
        "assignment_id": body["assignment_id"],
        "keys": sorted(body),
        "fragment": without_lease_ids(body["html"]),
        "page": without_lease_ids(page.text),
        "reply_keys": sorted(reply),
        "reply_task_is_handle": reply["task_id"] == body["assignment_id"],
    }


@pytest.mark.parametrize("feedback", [False, True])
def test_a_gold_task_cannot_be_told_apart_on_any_page(
    visit: Visit, make: Factory, session: Session, database: Database, feedback: bool
) -> None:
    _, _, annotator, project = gold_world(make, {"gold_rate": 1.0, "gold_feedback": feedback})
    visitor = visit(annotator)
    visitor.get(f"/projects/{project.id}/label")
    first = seen_by_annotator(visitor, project)  # gold comes first at gold_rate 1
    second = seen_by_annotator(visitor, project)
    assert is_gold(session, first["assignment_id"])
    assert not is_gold(session, second["assignment_id"])
    for key in ("keys", "fragment", "page", "reply_keys", "reply_task_is_handle"):
        assert first[key] == second[key], key
    assert first["reply_task_is_handle"]  # the annotator's handle, not the task's id
    for seen in (first, second):
        for text in (seen["fragment"], seen["page"]):
            assert "gold" not in text.lower() and SECRET not in text
    # The pages an annotator reads afterwards, once the loop has graded the gold label.
    sweep(database, session)
    for path in ("/projects", "/account", "/account/earnings", f"/projects/{project.id}/label"):
        text = visitor.get(path).text
        assert "gold" not in text.lower() and SECRET not in text, path
    # Today's checks do not show on the own page (as of the start of the day).
    assert "None of your labels had been checked by then." in visitor.get("/account").text


def test_reviews_of_a_gold_label_name_the_annotators_handle(
    visit: Visit, make: Factory, session: Session
) -> None:
    owner, reviewer, annotator, project = gold_world(make, {"gold_rate": 1.0})
    lease = assignments.lease(session, project, annotator.user)
    assert lease is not None and lease.task.gold is not None
    label = assignments.submit(session, lease.assignment.id, annotator.user, {"label": "alpha"})
    review = reviews.send_to_review(session, label, source=ReviewSource.manual, by=owner.user)
    reviews.decide(
        session, project, Role.reviewer, review.id, reviewer.user,
        decision=ReviewDecision.rejected, comment="look again",
    )  # fmt: skip
    text = visit(annotator).get("/projects").text
    assert f"task {lease.assignment.id}," in text
    if lease.task.id != lease.assignment.id:  # the two id sequences can meet (seen on PostgreSQL)
        assert f"task {lease.task.id}," not in text


def auto_paused(
    make: Factory, session: Session, database: Database, visit: Visit
) -> tuple[Person, Person, Person, Project]:
    """An annotator who answered four gold tasks wrong, paused by the loop."""
    owner, reviewer, annotator, project = gold_world(make, {"gold_rate": 1.0}, real=4, gold=4)
    visitor = visit(annotator)
    visitor.get(f"/projects/{project.id}/label")
    for _ in range(4):
        seen_by_annotator(visitor, project)
    sweep(database, session)
    return owner, reviewer, annotator, project


def test_an_owner_sees_why_an_annotator_was_paused_and_others_do_not(
    visit: Visit, make: Factory, session: Session, database: Database
) -> None:
    owner, reviewer, annotator, project = auto_paused(make, session, database, visit)
    dashboard = f"/projects/{project.id}/dashboard"
    mine = visit(owner).get(dashboard).text
    assert 'id="paused-list"' in mine and "Paused automatically" in mine
    assert "P(accuracy &lt; 60%)" in mine and "0 of 4 graded labels right" in mine
    assert f"Un-pause {annotator.user.pseudonym}" in mine
    theirs = visit(reviewer).get(dashboard)
    assert theirs.status_code == 200 and 'id="quality-table"' in theirs.text
    assert "paused" in theirs.text and "P(accuracy" not in theirs.text
    assert "Un-pause" not in theirs.text and annotator.user.email not in theirs.text
    assert visit(annotator).get(dashboard).status_code == 403
    listed = visit(reviewer).get(f"/projects/{project.id}/annotations").text
    assert listed.count(">excluded</span>") == 4  # the paused annotator's labels, left out
    # The annotator is told they are paused and why in words, without the figures.
    workbench = visit(annotator)
    label = workbench.get(f"/projects/{project.id}/label").text
    assert "You are paused in this project" in label and "below the 60%" in label
    assert "P(accuracy" not in label and "graded labels" not in label
    fragment = workbench.fetch(f"/projects/{project.id}/label/next").json()
    assert fragment["assignment_id"] is None and "You are paused" in fragment["html"]


def test_an_owner_unpauses_from_the_dashboard(
    visit: Visit, make: Factory, session: Session, database: Database
) -> None:
    owner, reviewer, annotator, project = auto_paused(make, session, database, visit)
    action = f"/projects/{project.id}/annotators/{annotator.user.id}/unpause"
    refused = visit(reviewer)
    refused.get(f"/projects/{project.id}/dashboard")
    assert refused.form(action).status_code == 403
    visitor = visit(owner)
    page = visitor.get(f"/projects/{project.id}/dashboard").text
    assert f'action="{action}"' in page
    assert visitor.client.post(action, data={}).status_code == 403  # no CSRF token
    reply = visitor.form(action)
    assert reply.status_code == 303
    assert reply.headers["location"] == f"/projects/{project.id}/dashboard#quality"
    after = visitor.get(reply.headers["location"]).text
    assert "may label this project again" in after and 'id="paused-list"' not in after
    assert "Un-pause" not in after
    again = visitor.form(action)  # not paused any more: said, not an error page
    assert "not paused" in visitor.get(again.headers["location"]).text
    workbench = visit(annotator)
    workbench.get(f"/projects/{project.id}/label")
    assert workbench.fetch(f"/projects/{project.id}/label/next").json()["assignment_id"]


def qualification_world(make: Factory) -> tuple[Person, Person, Project]:
    owner, annotator = make.person("owner"), make.person("ann")
    policy = {"qualification": {"tasks": 2, "pass_rate": 1.0}}
    project = make.project(owner, SCHEMA, policy, members={Role.annotator: [annotator]})
    make.tasks(project, [{"data": {"text": f"q{i}"}, "gold": {"label": "beta"}} for i in range(2)])
    make.tasks(project, [{"data": {"text": f"t{i}"}} for i in range(2)])
    return owner, annotator, project


def test_a_failed_qualification_is_explained_and_an_owner_resets_it(
    visit: Visit, make: Factory, session: Session
) -> None:
    owner, annotator, project = qualification_world(make)
    workbench = visit(annotator)
    start = workbench.get(f"/projects/{project.id}/label").text
    assert "2 qualification tasks" in start and "100%" in start
    for _ in range(2):
        lease = workbench.fetch(f"/projects/{project.id}/label/next").json()
        assert "Qualification" in lease["html"]
        answer = {"answers": {"label": "alpha"}}
        workbench.fetch(f"/assignments/{lease['assignment_id']}/submit", answer)
    locked = workbench.fetch(f"/projects/{project.id}/label/next").json()
    assert locked["assignment_id"] is None
    assert "did not pass this project&#39;s qualification" in locked["html"]
    assert "0 of your 2 answers were right; 100% are needed" in locked["html"]
    visitor = visit(owner)
    dashboard = visitor.get(f"/projects/{project.id}/dashboard").text
    assert 'id="failed-list"' in dashboard and "0 of 2 right" in dashboard
    action = f"/projects/{project.id}/annotators/{annotator.user.id}/reset-qualification"
    assert f'action="{action}"' in dashboard
    assert visitor.form(action).status_code == 303
    after = visitor.get(f"/projects/{project.id}/dashboard").text
    assert "may take the qualification again" in after and 'id="failed-list"' not in after
    assert "0/2" in after  # the attempt stays on record
    retake = workbench.fetch(f"/projects/{project.id}/label/next").json()
    assert retake["assignment_id"] is not None and "Qualification" in retake["html"]


def test_admins_edit_profiles_owners_edit_their_members_annotators_cannot(
    visit: Visit, make: Factory, session: Session
) -> None:
    admin, owner = make.person("admin", admin=True), make.person("owner")
    member, stranger = make.person("member"), make.person("stranger")
    project = make.project(owner, members={Role.annotator: [member]})
    path = f"/people/{member.user.id}/profile"
    by_admin = visit(admin)
    page = by_admin.get(f"/admin/users/{member.user.id}").text
    assert f'action="{path}"' in page and 'name="pay_rate"' in page
    reply = by_admin.form(
        path,
        {"tier": "2", "pay_rate": "0.35", "domain": ["Medicine", "law", ""],
         "level": ["4", "2", "1"], "next": f"/admin/users/{member.user.id}"},
    )  # fmt: skip
    assert (
        reply.status_code == 303 and reply.headers["location"] == f"/admin/users/{member.user.id}"
    )
    session.expire_all()
    found = workforce.profile(session, member.user)
    assert (found.tier, found.pay_rate_cents, found.domains) == (2, 35, {"law": 2, "medicine": 4})
    # An owner of the member's project: tier and domains, not the pay rate.
    by_owner = visit(owner)
    members = by_owner.get(f"/projects/{project.id}/members").text
    assert "medicine 4" in members and f'href="{path}?next=' in members
    form = by_owner.get(path).text
    assert 'name="pay_rate"' not in form and 'value="medicine"' in form
    saved = by_owner.form(path, {"tier": "3", "domain": ["medicine"], "level": ["5"]})
    assert saved.status_code == 303
    assert by_owner.form(path, {"tier": "3", "pay_rate": "9"}).status_code == 403
    session.expire_all()
    found = workforce.profile(session, member.user)
    assert (found.tier, found.pay_rate_cents, found.domains) == (3, 35, {"medicine": 5})
    # Problems come back with the form as posted; nothing is saved.
    bad = by_owner.form(
        path, {"tier": "3", "domain": ["medicine", "Bad Name!"], "level": ["2", "3"]}
    )
    assert bad.status_code == 422 and "a domain is a lower-case name" in bad.text
    assert 'value="Bad Name!"' in bad.text
    session.expire_all()
    assert workforce.profile(session, member.user).domains == {"medicine": 5}
    # Anyone else: as if the profile did not exist.
    visitor = visit(stranger)
    assert visitor.get(path).status_code == 404
    assert visitor.form(path, {"tier": "1"}).status_code == 404
    assert visit(member).get(f"/people/{owner.user.id}/profile").status_code == 404
    assert visit(owner).get(f"/people/{stranger.user.id}/profile").status_code == 404


def label_yesterday(session: Session, project: Project, who: User, answers: list[str]) -> None:
    """Labels submitted yesterday, so today's own page counts them."""
    yesterday = utcnow() - timedelta(days=1)
    for answer in answers:
        lease = assignments.lease(session, project, who, now=yesterday)
        assert lease is not None
        assignments.submit(
            session, lease.assignment.id, who, {"label": answer}, duration_ms=3000, now=yesterday
        )


def shown(trust: Trust) -> str:
    low, high = trust.interval
    return f"<b>{trust.mean * 100:.0f}%</b> <small>[{low * 100:.0f}%–{high * 100:.0f}%]</small>"


def test_trust_intervals_on_the_dashboard_and_the_own_page(
    visit: Visit, make: Factory, session: Session, database: Database
) -> None:
    owner, annotator = make.person("owner"), make.person("ann")
    policy = {"gold_rate": 1.0, "required_domains": ["medicine"]}
    project = make.project(owner, SCHEMA, policy, members={Role.annotator: [annotator]})
    workforce.set_profile(session, annotator.user, domains={"medicine": 3})
    make.tasks(project, [{"data": {"text": f"t{i}"}} for i in range(5)])
    make.tasks(project, [{"data": {"text": f"g{i}"}, "gold": {"label": "beta"}} for i in range(5)])
    label_yesterday(session, project, annotator.user, ["beta"] * 4 + ["alpha"] + ["alpha"] * 5)
    sweep(database, session)
    expected = shown(Trust(4, 5))
    dashboard = visit(owner).get(f"/projects/{project.id}/dashboard").text
    assert dashboard.count(expected) == 2  # in the project, and in its domain "medicine"
    assert (
        "4 of 5 checks right" in dashboard and "medicine <small>(all projects)</small>" in dashboard
    )
    assert '"trust": {"data"' in dashboard  # the interval chart's figure
    own = visit(annotator).get("/account").text
    assert own.count(expected) == 2  # per domain and per project
    assert 'id="own-trust-domains"' in own and "medicine" in own and "level 3" in own


def test_the_workbench_says_why_no_work_comes(
    visit: Visit, make: Factory, session: Session
) -> None:
    owner, annotator = make.person("owner"), make.person("ann")
    members = {Role.annotator: [annotator]}
    tiered = make.project(owner, SCHEMA, {"min_tier": 2}, members=members)
    expert = make.project(owner, SCHEMA, {"required_domains": ["medicine:3"]}, members=members)
    for project in (tiered, expert):
        make.tasks(project, [{"data": {"text": "t"}}])
    visitor = visit(annotator)
    page = visitor.get(f"/projects/{tiered.id}/label").text
    assert "This project needs a higher tier" in page and "you are tier 1" in page
    fragment = visitor.fetch(f"/projects/{expert.id}/label/next").json()
    assert fragment["assignment_id"] is None
    assert "medicine (level 3 or more)" in fragment["html"]
    workforce.set_profile(session, annotator.user, domains={"medicine": 3})
    fragment = visitor.fetch(f"/projects/{expert.id}/label/next").json()
    assert fragment["assignment_id"] is not None and "standing-note" not in fragment["html"]


def test_gold_feedback_shows_only_where_the_policy_asks_and_after_grading(
    visit: Visit, make: Factory, session: Session, database: Database
) -> None:
    _, _, annotator, told = gold_world(make, {"gold_rate": 1.0, "gold_feedback": True}, real=3)
    quiet = make.project(make.person("owner"), SCHEMA, {"gold_rate": 1.0})
    make.tasks(quiet, [{"data": {"text": "t"}}, {"data": {"text": "g"}, "gold": {"label": "beta"}}])
    visitor = visit(annotator)
    visitor.get(f"/projects/{told.id}/label")
    seen_by_annotator(visitor, told)  # the gold task, answered wrong
    ungraded = visitor.fetch(f"/projects/{told.id}/label/next").json()["html"]
    assert "none graded yet" in ungraded and "not right" not in ungraded
    sweep(database, session)
    graded = visitor.fetch(f"/projects/{told.id}/label/next").json()["html"]
    assert "0 of your latest 1 right" in graded
    assert re.search(r'class="check check-wrong">\d\d \w+ \d\d:\d\d ✗ not right<', graded)
    assert SECRET not in graded  # never the expected answer
    assert "checked tasks" not in visitor.get(f"/projects/{quiet.id}/label").text


def test_the_review_queue_shows_why_each_label_is_there(
    visit: Visit, make: Factory, session: Session
) -> None:
    owner, reviewer, annotator = make.person("owner"), make.person("rev"), make.person("ann")
    members = {Role.reviewer: [reviewer], Role.annotator: [annotator]}
    project = make.project(owner, SCHEMA, members=members)
    make.tasks(project, [{"data": {"text": f"t{i}"}} for i in range(2)])
    for _ in range(2):
        lease = assignments.lease(session, project, annotator.user)
        assert lease is not None
        assignments.submit(session, lease.assignment.id, annotator.user, {"label": "alpha"})
    first, second = session.scalars(
        select(Annotation.id).where(Annotation.project_id == project.id).order_by(Annotation.id)
    ).all()
    fast = spam.too_fast(400, [8000] * 30)
    line = spam.straight_line("label", ["alpha"] * 10, {'"alpha"': 0.5})
    assert fast and line and "; " in line  # a reason may hold "; " itself
    reviews.queue_for_review(
        session,
        [ToReview(first, ReviewSource.flagged, f"{fast}; {line}"),
         ToReview(second, ReviewSource.sampled, "review_rate 0.1")],
        now=utcnow(),
    )  # fmt: skip
    session.commit()
    page = visit(reviewer).get(f"/projects/{project.id}/review").text
    assert "Flagged by the quality loop" in page
    assert f'<li dir="auto">{escape(fast)}</li>' in page
    assert f'<li dir="auto">{escape(line)}</li>' in page
    assert 'id="queue"' in page and "review_rate 0.1" in page and "sampled" in page


def test_the_dashboard_says_when_labels_wait_for_the_quality_loop(
    visit: Visit,
    make: Factory,
    session: Session,
    database: Database,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner, _, annotator, project = gold_world(make, {}, real=3, gold=0)
    visitor = visit(annotator)
    visitor.get(f"/projects/{project.id}/label")
    for _ in range(3):
        seen_by_annotator(visitor, project)
    dashboard, api = f"/projects/{project.id}/dashboard", f"/api/v1/projects/{project.id}/quality"
    page = visit(owner).get(dashboard).text
    assert re.search(r'id="loop-waiting"><b>3</b><span>labels waiting', page)
    assert 'id="loop-behind"' not in page  # just arrived: the loop has not had its turn yet
    found = client.get(api, headers=owner.headers).json()
    assert found["waiting_labels"] == 3 and found["waiting_since"] is not None
    later = utcnow() + timedelta(minutes=3)  # no loop ran meanwhile: the page says so
    monkeypatch.setattr(web_quality, "utcnow", lambda: later)
    page = visit(owner).get(dashboard).text
    assert 'id="loop-behind"' in page and "quorum worker" in page
    sweep(database, session)
    page = visit(owner).get(dashboard).text
    assert re.search(r'id="loop-waiting"><b>0</b>', page) and 'id="loop-behind"' not in page
    found = client.get(api, headers=owner.headers).json()
    assert found["waiting_labels"] == 0 and found["waiting_since"] is None
