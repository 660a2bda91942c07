"""Who sees which page: every page checks its policy; other projects do not exist (404); an
annotator never sees gold or anyone else's answers."""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person
from tests.web.conftest import Visitor

from quorum.db.models import Project, ReviewSource, Role
from quorum.domain import assignments, reviews

Visit = Callable[[Person | None], Visitor]
TEXT_SCHEMA = {"questions": [{"name": "answer", "kind": "text", "min_chars": 3}]}
GOLD = "GOLD-SECRET-ANSWER"
OTHERS = "ANOTHER-ANNOTATORS-ANSWER"


@dataclass
class World:
    owner: Person
    reviewer: Person
    annotator: Person
    other: Person
    project: Project
    elsewhere: Project
    task_id: int
    review_id: int
    annotation_id: int


@pytest.fixture
def world(make: Factory, session: Session) -> World:
    owner, reviewer = make.person("owner"), make.person("reviewer")
    annotator, other = make.person("annotator"), make.person("other")
    project = make.project(
        owner,
        TEXT_SCHEMA,
        {"overlap": 2},
        members={Role.reviewer: [reviewer], Role.annotator: [annotator, other]},
    )
    make.tasks(project, [{"data": {"prompt": "Say hello"}, "gold": {"answer": GOLD}}])
    lease = assignments.lease(session, project, other.user)
    assert lease is not None
    annotation = assignments.submit(session, lease.assignment.id, other.user, {"answer": OTHERS})
    review = reviews.send_to_review(session, annotation, source=ReviewSource.manual, by=owner.user)
    elsewhere = make.project(make.person("stranger"), TEXT_SCHEMA)
    return World(
        owner,
        reviewer,
        annotator,
        other,
        project,
        elsewhere,
        lease.task.id,
        review.id,
        annotation.id,
    )


def pages(w: World, project: Project) -> dict[str, str]:
    p = project.id
    return {
        "label": f"/projects/{p}/label",
        "dashboard": f"/projects/{p}/dashboard",
        "review": f"/projects/{p}/review",
        "review_one": f"/projects/{p}/reviews/{w.review_id}",
        "annotations": f"/projects/{p}/annotations",
        "task": f"/projects/{p}/tasks/{w.task_id}",
        "import": f"/projects/{p}/import",
        "members": f"/projects/{p}/members",
    }


ALLOWED = {
    "annotator": {"label"},
    "reviewer": {"label", "dashboard", "review", "review_one", "annotations", "task"},
    "owner": {
        "label",
        "dashboard",
        "review",
        "review_one",
        "annotations",
        "task",
        "import",
        "members",
    },
}


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_each_role_opens_exactly_its_pages(visit: Visit, world: World, role: str) -> None:
    visitor = visit(getattr(world, role))
    for name, path in pages(world, world.project).items():
        status = visitor.get(path).status_code
        assert status == (200 if name in ALLOWED[role] else 403), (role, name, status)


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_pages_of_other_projects_do_not_exist(visit: Visit, world: World, role: str) -> None:
    visitor = visit(getattr(world, role))
    for name, path in pages(world, world.elsewhere).items():
        reply = visitor.get(path)
        assert reply.status_code == 404, (role, name, reply.status_code)
        assert world.elsewhere.name not in reply.text


@pytest.mark.parametrize(
    ("role", "page"), [("annotator", "label"), ("reviewer", "dashboard"), ("owner", "dashboard")]
)
def test_a_projects_own_address_leads_to_its_page_for_the_role(
    visit: Visit, world: World, role: str, page: str
) -> None:
    visitor = visit(getattr(world, role))
    reply = visitor.get(f"/projects/{world.project.id}")
    assert reply.status_code == 303
    assert reply.headers["location"] == f"/projects/{world.project.id}/{page}"
    assert visitor.get(f"/projects/{world.elsewhere.id}").status_code == 404
    assert visitor.get("/projects/new").status_code == 200  # not taken for a project id


def test_ids_of_one_project_under_another_are_not_found(
    visit: Visit, world: World, make: Factory
) -> None:
    owner_elsewhere = make.person("owner2")
    mine = make.project(owner_elsewhere, TEXT_SCHEMA)
    visitor = visit(owner_elsewhere)
    assert visitor.get(f"/projects/{mine.id}/tasks/{world.task_id}").status_code == 404
    assert visitor.get(f"/projects/{mine.id}/reviews/{world.review_id}").status_code == 404


def test_admin_pages_are_for_admins(visit: Visit, world: World, make: Factory) -> None:
    for person in (world.owner, world.annotator):
        visitor = visit(person)
        assert visitor.get("/admin/users").status_code == 403
        assert visitor.get(f"/admin/users/{world.other.user.id}").status_code == 403
    admin = visit(make.person("admin", admin=True))
    assert admin.get("/admin/users").status_code == 200
    assert admin.get(f"/projects/{world.elsewhere.id}/dashboard").status_code == 200


def test_annotators_cannot_act_as_owners_or_reviewers(visit: Visit, world: World) -> None:
    visitor = visit(world.annotator)
    p = world.project.id
    assert (
        visitor.form(
            f"/projects/{p}/members", {"email": "x@example.com", "role": "owner"}
        ).status_code
        == 403
    )
    assert (
        visitor.form(f"/projects/{p}/annotations/{world.annotation_id}/review").status_code == 403
    )
    assert (
        visitor.form(
            f"/projects/{p}/reviews/{world.review_id}", {"decision": "accepted"}
        ).status_code
        == 403
    )
    upload = {"file": ("tasks.ndjson", b'{"data": {"prompt": "x"}}\n', "application/x-ndjson")}
    assert visitor.form(f"/projects/{p}/import", files=upload).status_code == 403


def test_someone_elses_lease_is_not_found(
    visit: Visit, world: World, session: Session, make: Factory
) -> None:
    make.tasks(world.project, [{"data": {"prompt": "Another"}}])
    lease = assignments.lease(session, world.project, world.other.user)
    assert lease is not None
    visitor = visit(world.annotator)
    p, a = world.project.id, lease.assignment.id
    assert visitor.get(f"/projects/{p}/label/{a}").status_code == 404
    assert (
        visitor.fetch(f"/assignments/{a}/submit", {"answers": {"answer": "mine"}}).status_code
        == 404
    )
    assert visitor.fetch(f"/assignments/{a}/skip").status_code == 404


def test_an_annotator_never_sees_gold_or_other_answers(visit: Visit, world: World) -> None:
    visitor = visit(world.annotator)
    p = world.project.id
    seen = [visitor.get("/projects").text, visitor.get(f"/projects/{p}/label").text]
    reply = visitor.fetch(f"/projects/{p}/label/next")
    assert reply.status_code == 200 and reply.json()["assignment_id"] is not None
    seen.append(reply.text)
    seen.append(visitor.get(reply.json()["url"]).text)
    assert "Say hello" in seen[-1]  # the task itself is shown
    for text in seen:
        assert GOLD not in text and OTHERS not in text
    # Their own answer comes back to them, and nothing else.
    done = visitor.fetch(
        f"/assignments/{reply.json()['assignment_id']}/submit",
        {"answers": {"answer": "my own words"}},
        {"Idempotency-Key": "k1"},
    )
    assert done.status_code == 200 and set(done.json()) == {"annotation_id", "task_id"}
    assert GOLD not in visitor.get("/projects").text


def test_page_routes_have_their_own_names() -> None:
    """url() in templates finds routes by name; an API route of the same name would win."""
    from fastapi.routing import APIRoute

    from quorum import api, web

    def names(routers: list[object]) -> list[str]:
        found = []
        for router in routers:
            for route in getattr(router, "routes", []):
                if isinstance(route, APIRoute):
                    found.append(route.name)
        return found

    pages = names([m.router for m in (*web.PAGE_MODULES, web.vendor)])
    api_names = names([m.router for m in (api.users, api.projects, api.tasks, api.assignments)])
    assert all(name.startswith("web_") for name in pages), pages
    assert len(set(pages)) == len(pages) and not set(pages) & set(api_names)


def test_no_page_links_into_the_api(visit: Visit, world: World) -> None:
    visitor = visit(world.owner)
    for path in [*pages(world, world.project).values(), "/projects", "/projects/new", "/account"]:
        html = visitor.get(path).text
        assert 'href="/api' not in html and 'action="/api' not in html, path
