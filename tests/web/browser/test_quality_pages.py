"""The quality loop's pages in a real browser: an owner reads why an annotator was paused and
un-pauses them, lets someone retake the qualification; a profile is edited with the keyboard;
an annotator reads their own accuracy and standing; a reviewer reads why labels were flagged."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import Page
from sqlalchemy.orm import Session
from tests.web.browser.conftest import SCREENSHOTS, Server, SignIn, shoot

from quorum.db.engine import Database, make_engine
from quorum.db.models import Annotation, Project, ReviewSource, User
from quorum.db.types import utcnow
from quorum.domain import assignments, quality_jobs, reviews, spam, users, workforce
from quorum.domain.reviews import ToReview

pytestmark = pytest.mark.browser
CHOICE = {"questions": [{"name": "urgency", "kind": "choice", "options": ["low", "high"]}]}


@contextmanager
def opened(server: Server) -> Iterator[tuple[Database, Session]]:
    database = Database(make_engine(server.database_url))
    try:
        with database.session(write=True) as session:
            yield database, session
    finally:
        database.dispose()


def member(server: Server, project_id: int, email: str, role: str = "annotator") -> None:
    body = {"email": email, "role": role}
    server.api("POST", f"/projects/{project_id}/members", json=body)


def label(
    session: Session, project_id: int, who: User, answer: str, *, most: int, days_ago: int = 0
) -> list[Annotation]:
    project = session.get(Project, project_id)
    assert project is not None
    at = utcnow() - timedelta(days=days_ago)
    done = []
    for _ in range(most):
        lease = assignments.lease(session, project, who, now=at)
        if lease is None:
            break
        done.append(
            assignments.submit(
                session, lease.assignment.id, who, {"urgency": answer}, duration_ms=6000, now=at
            )
        )
    return done


def gold_project(server: Server) -> int:
    """Hidden gold (its answer is "high") mixed into real work; annotator2 and annotator3 too."""
    tasks: list[dict[str, Any]] = [{"data": {"message": f"Message {i}"}} for i in range(8)]
    tasks += [{"data": {"message": f"Check {i}"}, "gold": {"urgency": "high"}} for i in range(6)]
    project_id = server.project(CHOICE, tasks, overlap=3, gold_rate=1.0, gold_feedback=True)
    for email in ("annotator2@example.com", "annotator3@example.com"):
        member(server, project_id, email)
    return project_id


def test_an_owner_reads_why_someone_was_paused_and_unpauses_them(
    server: Server, sign_in: SignIn
) -> None:
    project_id = gold_project(server)
    with opened(server) as (database, session):
        careless = users.get_by_email(session, "annotator1@example.com")
        careful = users.get_by_email(session, "annotator2@example.com")
        label(session, project_id, careless, "low", most=8)
        label(session, project_id, careful, "high", most=6, days_ago=1)
        session.commit()  # NOTE: reading the last label back began a write; end it first
        quality_jobs.sweep(database)
    annotator = sign_in("annotator1@example.com")
    annotator.goto(f"/projects/{project_id}/label")
    note = annotator.wait_for_selector("#standing-note")
    assert "You are paused in this project" in annotator.inner_text("#no-task")
    assert "P(accuracy" not in (note.text_content() or "")
    shoot(annotator, "label-paused")
    owner = sign_in("requester@example.com")
    owner.goto(f"/projects/{project_id}/dashboard")
    owner.wait_for_selector("#chart-trust .main-svg")
    reason = owner.inner_text("#paused-list")
    assert "Paused automatically" in reason and "P(accuracy < 60%)" in reason
    shoot_element(owner, "#quality", "dashboard-quality")
    owner.once("dialog", lambda dialog: dialog.accept())
    owner.click(f"#paused-list button:has-text('Un-pause {careless.pseudonym}')")
    owner.wait_for_selector(".flash-ok")
    assert "may label this project again" in owner.inner_text(".flash-ok")
    assert owner.query_selector("#paused-list") is None
    annotator.press("body", "n")  # check again: work comes
    annotator.wait_for_selector("#answer-form")


def shoot_element(page: Page, selector: str, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(selector).screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def test_a_failed_qualification_is_explained_and_reset(server: Server, sign_in: SignIn) -> None:
    tasks: list[dict[str, Any]] = [
        {"data": {"message": f"Qualifier {i}"}, "gold": {"urgency": "high"}} for i in range(2)
    ]
    tasks += [{"data": {"message": f"Message {i}"}} for i in range(3)]
    project_id = server.project(CHOICE, tasks, qualification={"tasks": 2, "pass_rate": 1.0})
    annotator = sign_in("annotator1@example.com")
    annotator.goto(f"/projects/{project_id}/label")
    annotator.wait_for_selector("#answer-form")
    assert "Qualification" in annotator.inner_text("#standing-note")
    shoot(annotator, "label-qualifying")
    for _ in range(2):
        form = annotator.wait_for_selector("#answer-form #standing-note")
        held = annotator.get_attribute("#answer-form", "data-assignment")
        assert form is not None and held
        annotator.keyboard.press("1")  # "low": wrong
        annotator.keyboard.press("Control+Enter")
        annotator.wait_for_selector(f"#answer-form:not([data-assignment='{held}']), #no-task")
    annotator.wait_for_selector("#no-task")
    assert "did not pass this project's qualification" in annotator.inner_text("#no-task")
    shoot(annotator, "label-qualification-failed")
    owner = sign_in("requester@example.com")
    owner.goto(f"/projects/{project_id}/dashboard")
    assert "0 of 2 right" in owner.inner_text("#failed-list")
    owner.once("dialog", lambda dialog: dialog.accept())
    owner.click("#failed-list button")
    owner.wait_for_selector(".flash-ok")
    assert owner.query_selector("#failed-list") is None
    annotator.goto(f"/projects/{project_id}/label")
    annotator.wait_for_selector("#answer-form #standing-note")


def test_a_profile_is_edited_with_the_keyboard(server: Server, sign_in: SignIn) -> None:
    with opened(server) as (_, session):
        person = users.get_by_email(session, "annotator3@example.com")
        person_id = person.id
        # NOTE: the demo gives annotators domains; start from a profile without any, so the
        # keys below fill the form's first empty row
        workforce.set_profile(session, person, domains={})
    owner = sign_in("requester@example.com")
    owner.goto(f"/admin/users/{person_id}")
    owner.focus("#profile-tier")
    owner.keyboard.press("Tab")  # the pay rate (admins)
    owner.keyboard.type("0.40")
    owner.keyboard.press("Tab")
    owner.keyboard.type("cardiology")
    owner.keyboard.press("Tab")
    owner.keyboard.type("5")  # the level
    owner.keyboard.press("Tab")
    owner.keyboard.type("Triage")
    shoot_element(owner, "#profile", "profile-form")
    owner.click("#profile-form button[type=submit]")
    owner.wait_for_selector(".flash-ok")
    shoot(owner, "admin-user-profile")
    with opened(server) as (_, session):
        found = workforce.profile(session, users.get_by_email(session, "annotator3@example.com"))
        assert (found.pay_rate_cents, found.domains) == (40, {"cardiology": 5, "triage": 1})
    annotator = sign_in("annotator3@example.com")
    annotator.goto("/account")
    assert "cardiology level 5" in " ".join(annotator.inner_text("#own-domains").split())


def test_an_annotator_reads_their_own_accuracy(server: Server, sign_in: SignIn) -> None:
    project_id = gold_project(server)
    with opened(server) as (database, session):
        who = users.get_by_email(session, "annotator3@example.com")
        label(session, project_id, who, "high", most=5, days_ago=1)
        label(session, project_id, who, "low", most=3, days_ago=1)
        session.commit()  # NOTE: reading the last label back began a write; end it first
        quality_jobs.sweep(database)
    page = sign_in("annotator3@example.com")
    page.goto("/account")
    table = page.inner_text("#own-trust-domains")
    assert "general" in table and "checks right" in table
    shoot(page, "account-annotator-trust")
    page.goto(f"/projects/{project_id}/label")
    page.wait_for_selector("#check-feedback")
    assert "4 of your latest 5 right" in page.inner_text("#check-feedback")
    shoot(page, "label-check-feedback")


def test_a_reviewer_reads_why_labels_were_flagged(server: Server, sign_in: SignIn) -> None:
    project_id = server.project(CHOICE, [{"data": {"message": f"M {i}"}} for i in range(3)])
    with opened(server) as (_, session):
        who = users.get_by_email(session, "annotator1@example.com")
        first, second, _ = label(session, project_id, who, "low", most=3)
        fast = spam.too_fast(400, [9000] * 30)
        line = spam.straight_line("urgency", ["low"] * 10, {'"low"': 0.3})
        assert fast and line
        flagged = ToReview(first.id, ReviewSource.flagged, f"{fast}; {line}")
        sampled = ToReview(second.id, ReviewSource.sampled, "review_rate 0.1")
        reviews.queue_for_review(session, [flagged, sampled], now=utcnow())
        session.commit()
    page = sign_in("reviewer@example.com")
    page.goto(f"/projects/{project_id}/review")
    reasons = page.inner_text("#review-reason")
    assert "Flagged by the quality loop" in reasons and "too fast" in reasons
    assert "straight-lining" in reasons
    assert "review_rate 0.1" in page.inner_text("#queue")
    shoot(page, "review-flagged")
