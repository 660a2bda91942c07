"""Admin pages and the account page: users, tiers, roles, tokens shown once."""

import re
from collections.abc import Callable

import httpx
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person
from tests.web.conftest import Visitor

from quorum.db.models import Role
from quorum.domain import users

Visit = Callable[[Person | None], Visitor]


def test_admins_create_and_change_users(visit: Visit, make: Factory, session: Session) -> None:
    admin = make.person("admin", admin=True)
    visitor = visit(admin)
    visitor.get("/admin/users")
    reply = visitor.form(
        "/admin/users",
        {"email": "New.Person@Example.com", "name": "New", "password": "long-enough", "tier": "2"},
    )
    assert reply.status_code == 303
    person = users.get_by_email(session, "new.person@example.com")
    assert person.tier == 2 and not person.is_admin
    duplicate = visitor.form("/admin/users", {"email": "new.person@example.com"})
    assert "already exists" in visitor.get(duplicate.headers["location"]).text
    visitor.form(f"/admin/users/{person.id}", {"is_admin": "true"})
    session.expire_all()
    assert (person.is_admin, person.is_active) == (True, False)  # unticked: off
    visitor.form(f"/admin/users/{person.id}", {"is_active": "true"})
    session.expire_all()
    assert (person.is_admin, person.is_active) == (False, True)


def test_admins_cannot_lock_themselves_out(visit: Visit, make: Factory, session: Session) -> None:
    admin = make.person("admin", admin=True)
    visitor = visit(admin)
    visitor.get(f"/admin/users/{admin.user.id}")
    reply = visitor.form(f"/admin/users/{admin.user.id}", {"is_active": "true"})
    assert "cannot remove your own admin rights" in visitor.get(reply.headers["location"]).text
    session.expire_all()
    assert admin.user.is_admin


def test_a_user_page_lists_roles(visit: Visit, make: Factory) -> None:
    admin, member = make.person("admin", admin=True), make.person("member")
    project = make.project(make.person("owner"), members={Role.reviewer: [member]})
    page = visit(admin).get(f"/admin/users/{member.user.id}")
    assert f'reviewer in <a href="/projects/{project.id}/members">' in page.text


def _new_token(html: str) -> str:
    found = re.search(r'<code id="new-token" class="token">([^<]+)</code>', html)
    assert found, "the new token is shown"
    return found.group(1)


def test_tokens_are_shown_once_and_can_be_revoked(
    visit: Visit, make: Factory, client: TestClient
) -> None:
    person = make.person("ann")
    visitor = visit(person)
    visitor.get("/account")
    token = _new_token(visitor.form("/account/tokens", {"name": "script"}).text)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    page = visitor.get("/account").text
    assert token not in page and "script" in page
    revoke = re.findall(r'action="(/account/tokens/\d+/revoke)"', page)
    assert len(revoke) == 2  # the factory's token and this one
    visitor.form(revoke[-1])
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    assert "revoked" in visitor.get("/account").text


def test_admins_create_and_revoke_tokens_for_others(
    visit: Visit, make: Factory, session: Session
) -> None:
    admin, person = make.person("admin", admin=True), make.person("bot")
    visitor = visit(admin)
    visitor.get(f"/admin/users/{person.user.id}")
    reply = visitor.form(f"/admin/users/{person.user.id}/tokens", {"name": "pipeline"})
    token = _new_token(reply.text)
    assert users.authenticate_token(session, token) == person.user
    row = next(t for t in users.list_tokens(session, person.user) if t.name == "pipeline")
    visitor.form(f"/admin/users/{person.user.id}/tokens/{row.id}/revoke")
    session.expire_all()
    assert row.revoked_at is not None
    other = make.person("other")
    wrong_owner = visitor.form(f"/admin/users/{other.user.id}/tokens/{row.id}/revoke")
    assert wrong_owner.status_code == 404


def test_a_bad_form_field_is_named_not_a_missing_page(visit: Visit, make: Factory) -> None:
    admin = visit(make.person("root", admin=True))
    admin.get("/admin/users")
    reply = admin.form("/admin/users", {"email": "x@example.com", "tier": "x"})
    assert reply.status_code == 422 and reply.headers["content-type"].startswith("text/html")
    assert "Tier: Input should be a valid integer" in reply.text  # the page capitalises
    owner = make.person("owner")
    project = make.project(owner)
    visitor = visit(owner)
    visitor.get(f"/projects/{project.id}/members")
    reply = visitor.form(f"/projects/{project.id}/members", {"email": "a@b.c", "role": "boss"})
    assert reply.status_code == 422 and "Role: Input should be" in reply.text
    fetched = visitor.client.post(
        f"/projects/{project.id}/members",
        data={"csrf_token": visitor.csrf, "role": "owner"},
        headers={"Accept": "application/json"},
    )
    assert fetched.status_code == 422
    assert fetched.json()["error"]["details"] == [{"field": "email", "message": "Field required"}]


def test_error_pages_are_html_and_the_api_stays_json(visit: Visit, make: Factory) -> None:
    visitor = visit(make.person("ann"))
    page = visitor.get("/no/such/page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert visitor.get("/projects/not-a-number/label").status_code == 404
    api: httpx.Response = visitor.client.get("/api/v1/projects/999")
    assert api.status_code == 401 and api.json()["error"]["code"] == "unauthorized"
