"""Every page, as the people who use it see it, at 1280x800: screenshots to look at, no page
wider than the window, every control reachable and labelled."""

import random

import pytest
from sqlalchemy import select
from tests.web.browser.conftest import DESKTOP, Server, SignIn, shoot

from quorum.db.models import Annotation, Project, ReviewSource
from quorum.domain import assignments, reviews, users

pytestmark = pytest.mark.browser
TRIAGE = 1  # the demo's choice project


@pytest.fixture(scope="module")
def labelled_demo(server: Server) -> int:
    """Labels from the three demo annotators on the triage project, two sent to review."""
    rng = random.Random(7)
    with server.session() as session:
        project = session.get(Project, TRIAGE)
        assert project is not None
        options = project.schema["questions"][0]["options"]
        for i in (1, 2, 3):
            person = users.get_by_email(session, f"annotator{i}@example.com")
            for _ in range(8):
                lease = assignments.lease(session, project, person)
                if lease is None:
                    break
                answer = {"urgency": rng.choice(options[:3])}
                assignments.submit(
                    session,
                    lease.assignment.id,
                    person,
                    answer,
                    duration_ms=rng.randint(2000, 40000),
                )
        query = (
            select(Annotation)
            .where(Annotation.project_id == TRIAGE)
            .order_by(Annotation.id)
            .limit(2)
        )
        for annotation in session.scalars(query).all():
            reviews.send_to_review(
                session, annotation, source=ReviewSource.sampled, reason="review_rate 0.1"
            )
        first_task = session.scalar(
            select(Annotation.task_id).where(Annotation.project_id == TRIAGE).limit(1)
        )
        assert first_task is not None
        return int(first_task)


PAGES = [
    ("requester@example.com", "/projects", "projects-requester"),
    ("requester@example.com", f"/projects/{TRIAGE}/dashboard", "dashboard"),
    ("requester@example.com", "/projects/6/dashboard", "dashboard-spans"),
    ("requester@example.com", f"/projects/{TRIAGE}/annotations", "annotations-demo"),
    ("requester@example.com", f"/projects/{TRIAGE}/tasks/{{task}}", "task"),
    ("requester@example.com", f"/projects/{TRIAGE}/members", "members"),
    ("requester@example.com", f"/projects/{TRIAGE}/import", "import"),
    ("requester@example.com", "/projects/new", "project-new-empty"),
    ("requester@example.com", "/admin/users", "admin-users"),
    ("requester@example.com", "/admin/users/3", "admin-user"),
    ("requester@example.com", "/account", "account"),
    ("requester@example.com", "/people/4/profile", "profile"),
    ("annotator2@example.com", "/account", "account-annotator"),
    ("reviewer@example.com", f"/projects/{TRIAGE}/review", "review-demo"),
    ("reviewer@example.com", "/projects", "projects-reviewer"),
    ("annotator2@example.com", "/projects", "projects-annotator"),
    ("annotator2@example.com", "/projects/5/label", "label-ranking-demo"),
    ("annotator2@example.com", "/projects/404/dashboard", "not-found"),
    ("annotator2@example.com", f"/projects/{TRIAGE}/dashboard", "forbidden"),
]


@pytest.mark.parametrize(("who", "path", "name"), PAGES, ids=[p[2] for p in PAGES])
def test_every_page(
    server: Server, sign_in: SignIn, labelled_demo: int, who: str, path: str, name: str
) -> None:
    page = sign_in(who)
    reply = page.goto(path.format(task=labelled_demo))
    assert reply is not None
    expected = {"not-found": 404, "forbidden": 403}.get(name, 200)
    assert reply.status == expected
    if name == "dashboard":
        page.wait_for_selector("#chart-throughput .main-svg")
    if "label" in name:
        page.wait_for_selector("#answer-form, #no-task")
    page.wait_for_load_state("networkidle")
    shoot(page, name)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= DESKTOP["width"], f"{path} is {width}px wide"
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
              .filter(el => !el.labels?.length && !el.getAttribute('aria-label')
                            && !el.closest('[hidden], .nojs-only'))
              .map(el => el.name || el.id)"""
    )
    assert unlabelled == [], unlabelled


def test_sign_in_page_and_a_wrong_password(server: Server, browser: object) -> None:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport=DESKTOP, base_url=server.url)
    page = context.new_page()
    page.goto("/projects")
    assert page.url.endswith("/sign-in?next=/projects")
    shoot(page, "sign-in")
    page.fill("#email", "annotator1@example.com")
    page.fill("#password", "not the password")
    page.keyboard.press("Enter")
    page.wait_for_selector("#sign-in-error")
    assert page.inner_text("#sign-in-error") == "Wrong email or password."
    shoot(page, "sign-in-wrong-password")
    page.fill("#password", server.passwords["annotator1@example.com"])
    page.keyboard.press("Enter")
    page.wait_for_url("**/projects")
    page.click("button:has-text('Sign out')")
    page.wait_for_url("**/sign-in")
    context.close()


def test_keyboard_reaches_the_main_controls(server: Server, sign_in: SignIn) -> None:
    page = sign_in("requester@example.com")
    page.goto("/projects")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to content"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the focus is visible
    page.keyboard.press("Enter")
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Dashboard":
            break
    else:
        raise AssertionError("the Dashboard link cannot be reached with Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard")
