"""Every state-changing page request needs the session's CSRF token: forms and fetches alike."""

from collections.abc import Callable

import pytest
from fastapi.routing import APIRoute
from tests.conftest import Factory, Person
from tests.web.conftest import Visitor

from quorum.web import PAGE_MODULES

Visit = Callable[[Person | None], Visitor]
UNSAFE = sorted(
    (route.path, method)
    for module in PAGE_MODULES
    for route in module.router.routes
    if isinstance(route, APIRoute)
    for method in route.methods
    if method not in {"GET", "HEAD", "OPTIONS"}
)


def _concrete(path: str) -> str:
    return (
        path.replace("{project_id}", "1")
        .replace("{assignment_id}", "1")
        .replace("{review_id}", "1")
        .replace("{annotation_id}", "1")
        .replace("{user_id}", "1")
        .replace("{token_id}", "1")
    )


def test_the_pages_have_state_changing_routes() -> None:
    assert len(UNSAFE) >= 15  # so the parametrized test below cannot pass by testing nothing


@pytest.mark.parametrize(("path", "method"), UNSAFE)
def test_a_request_without_the_token_is_refused(
    visit: Visit, make: Factory, path: str, method: str
) -> None:
    visitor = visit(make.person("admin", admin=True))
    url = _concrete(path)
    for reply in (
        visitor.client.request(method, url, data={"name": "x"}),  # a form, no token
        visitor.client.request(method, url, data={"csrf_token": "forged"}),
        visitor.client.request(method, url, json={}, headers={"Accept": "application/json"}),
        visitor.client.request(
            method, url, json={}, headers={"Accept": "application/json", "X-CSRF-Token": "forged"}
        ),
    ):
        assert reply.status_code == 403, (url, reply.text)
        assert "csrf" in reply.text.lower() or "did not come from Quorum" in reply.text


def test_the_token_of_another_session_is_refused(visit: Visit, make: Factory) -> None:
    mine, theirs = visit(make.person("ann")), visit(make.person("ben"))
    reply = mine.client.post("/account/tokens", data={"csrf_token": theirs.csrf, "name": "x"})
    assert reply.status_code == 403
    assert mine.form("/account/tokens", {"name": "x"}).status_code == 200


def test_the_sign_in_form_needs_the_token_too(visit: Visit, make: Factory) -> None:
    person = make.person("ann")
    visitor = visit(None)
    reply = visitor.client.post(
        "/sign-in", data={"email": person.user.email, "password": "password123"}
    )
    assert reply.status_code == 403
    assert "set-cookie" not in reply.headers or "uid" not in reply.headers["set-cookie"]


def test_the_api_is_unaffected(client: object, make: Factory) -> None:
    from fastapi.testclient import TestClient

    assert isinstance(client, TestClient)
    person = make.person("ann")
    reply = client.post("/api/v1/tokens", json={"name": "x"}, headers=person.headers)
    assert reply.status_code == 201  # bearer tokens, no cookies: no CSRF to defend against
