"""Fixtures for the web pages: people using the site through their own cookie jars.

Server-side tests drive the app in process (``Visitor``); browser tests (``browser/``) drive a
real ``quorum serve`` with Chromium.
"""

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.conftest import Person

from quorum.domain import users

PASSWORD = "password123"  # what tests.conftest.Factory gives everyone
CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "page without a CSRF token"
    return found.group(1)


@pytest.fixture(autouse=True)
def quick_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its defaults takes about 0.3 s a hash or check on a test machine, and these
    tests make people and sign them in by the dozen; the pages, not the hash, are under test."""
    monkeypatch.setattr(
        users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


class Visitor:
    """One browser's worth of cookies, signed in or not; forms carry the page's CSRF token."""

    def __init__(self, app: FastAPI) -> None:
        self.client = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
        self.csrf = ""

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        reply = self.client.get(path, **kwargs)
        if "text/html" in reply.headers.get("content-type", "") and CSRF.search(reply.text):
            self.csrf = csrf_of(reply.text)
        return reply

    def form(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, data={"csrf_token": self.csrf, **(data or {})}, **kwargs)

    def fetch(
        self, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """What the pages' scripts send: JSON, the CSRF header, and Accept: application/json."""
        sent = {"X-CSRF-Token": self.csrf, "Accept": "application/json", **(headers or {})}
        if body is None:
            return self.client.post(path, headers=sent)
        return self.client.post(path, json=body, headers=sent)

    def sign_in(self, email: str, password: str = PASSWORD) -> httpx.Response:
        self.get("/sign-in")
        reply = self.form("/sign-in", {"email": email, "password": password, "next": "/projects"})
        if reply.status_code == 303:
            self.get("/projects")  # the new session's token
        return reply


@pytest.fixture
def visit(client: TestClient, app: FastAPI) -> Iterator[Callable[[Person | None], Visitor]]:
    """``visit(person)``: a Visitor signed in as ``person`` (``None``: signed out)."""
    opened: list[Visitor] = []

    def open_as(person: Person | None = None) -> Visitor:
        visitor = Visitor(app)
        opened.append(visitor)
        if person is not None:
            reply = visitor.sign_in(person.user.email)
            assert reply.status_code == 303, reply.text
        return visitor

    yield open_as
    for visitor in opened:
        visitor.client.close()
