"""Signing in and out: cookies, one message for every failure, rate limits shared by processes."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person
from tests.web.conftest import Visitor

from quorum.app import create_app
from quorum.config import Settings
from quorum.db.engine import Database
from quorum.db.models import SignInFailure
from quorum.db.types import utcnow
from quorum.domain import accounts, users
from quorum.domain.accounts import MAX_FAILURES_PER_EMAIL, TooManyAttempts
from quorum.domain.errors import Unauthorized
from quorum.web.auth import safe_next

Visit = Callable[[Person | None], Visitor]


def test_sign_in_sets_a_signed_http_only_lax_cookie(visit: Visit, make: Factory) -> None:
    person = make.person("ann")
    visitor = visit(None)
    reply = visitor.sign_in(person.user.email)
    assert reply.status_code == 303
    assert reply.headers["location"] == "/projects"
    cookie = reply.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    assert visitor.get("/projects").status_code == 200


def test_secure_cookies_are_configurable(
    make: Factory, database: Database, tmp_path: object
) -> None:
    settings = Settings(database_url="sqlite:///unused.db", environment="test", secure_cookies=True)
    person = make.person("ann")
    with Visitor(create_app(settings, database=database)).client as client:
        visitor = Visitor.__new__(Visitor)
        visitor.client, visitor.csrf = client, ""
        reply = visitor.sign_in(person.user.email)
        assert "secure" in reply.headers["set-cookie"].lower()


def test_pages_need_a_session(visit: Visit) -> None:
    reply = visit(None).get("/projects/1/dashboard")
    assert reply.status_code == 303
    assert reply.headers["location"] == "/sign-in?next=/projects/1/dashboard"


# A NUL in the email matches no account (PostgreSQL's text cannot hold one: it was a 500 there).
@pytest.mark.parametrize(
    "email", ["ann1@example.com", "nobody@example.com", "ann1\x00@example.com"]
)
def test_a_wrong_password_and_an_unknown_email_read_the_same(
    visit: Visit, make: Factory, email: str
) -> None:
    make.person("ann")  # ann1@example.com
    reply = visit(None).sign_in(email, "not-the-password")
    assert reply.status_code == 401
    assert "Wrong email or password." in reply.text
    assert "no user" not in reply.text.lower() and "unknown" not in reply.text.lower()


def test_sign_out_ends_the_session(visit: Visit, make: Factory) -> None:
    visitor = visit(make.person("ann"))
    assert visitor.form("/sign-out").status_code == 303
    assert visitor.get("/projects").status_code == 303


def test_deactivation_and_a_new_password_end_existing_sessions(
    visit: Visit, make: Factory, session: Session
) -> None:
    ann, ben = make.person("ann"), make.person("ben")
    first, second = visit(ann), visit(ben)
    users.set_password(session, ann.user, "a-new-password")
    assert first.get("/projects").status_code == 303
    accounts.set_active(session, make.person("admin", admin=True).user, ben.user, False)
    assert second.get("/projects").status_code == 303
    assert visit(None).sign_in(ben.user.email).status_code == 401


def test_the_limits() -> None:
    assert (MAX_FAILURES_PER_EMAIL, accounts.MAX_FAILURES_PER_IP) == (5, 50)
    assert accounts.WINDOW == timedelta(minutes=15)


@pytest.fixture
def low_limits(monkeypatch: pytest.MonkeyPatch) -> int:
    """Lower limits, read when each sign-in is checked: the rule is the same, with fewer
    (deliberately slow) password checks."""
    monkeypatch.setattr(accounts, "MAX_FAILURES_PER_EMAIL", 2)
    monkeypatch.setattr(accounts, "MAX_FAILURES_PER_IP", 3)
    return 2


def test_failed_sign_ins_are_limited_per_email_even_with_the_right_password(
    visit: Visit, make: Factory, low_limits: int
) -> None:
    person = make.person("ann")
    visitor = visit(None)
    for _ in range(low_limits):
        assert visitor.sign_in(person.user.email, "wrong-password").status_code == 401
    reply = visitor.sign_in(person.user.email)
    assert reply.status_code == 429
    assert "Too many failed sign-ins" in reply.text
    # Unknown emails are limited just the same, so the limit tells nothing about accounts.
    for _ in range(low_limits):
        visitor.sign_in("nobody@example.com", "wrong-password")
    assert visitor.sign_in("nobody@example.com", "x").status_code == 429


def test_the_limit_lives_in_the_database_so_every_process_sees_it(
    make: Factory, database: Database, session: Session, settings: Settings, low_limits: int
) -> None:
    person = make.person("ann")
    for _ in range(low_limits):
        with pytest.raises(Unauthorized):
            accounts.sign_in(session, person.user.email, "wrong", ip="10.0.0.1")
    stored = session.scalar(select(func.count()).select_from(SignInFailure))
    assert stored == low_limits
    other_process = Visitor(create_app(settings, database=database))  # a second app, same rows
    with other_process.client:
        assert other_process.sign_in(person.user.email).status_code == 429


def test_failures_expire_and_a_success_clears_them(
    make: Factory, session: Session, low_limits: int
) -> None:
    person = make.person("ann")
    earlier = utcnow() - accounts.WINDOW - timedelta(seconds=1)
    for _ in range(low_limits):
        with pytest.raises(Unauthorized):
            accounts.sign_in(session, person.user.email, "wrong", ip="10.0.0.1", now=earlier)
    assert accounts.sign_in(session, person.user.email, "password123", ip="10.0.0.1") == person.user
    for _ in range(low_limits - 1):
        with pytest.raises(Unauthorized):
            accounts.sign_in(session, person.user.email, "wrong", ip="10.0.0.2")
    accounts.sign_in(session, person.user.email, "password123", ip="10.0.0.2")
    with pytest.raises(Unauthorized):  # counting starts again: not yet limited
        accounts.sign_in(session, person.user.email, "wrong", ip="10.0.0.2")


def test_many_emails_from_one_address_are_limited(
    make: Factory, session: Session, low_limits: int
) -> None:
    for i in range(accounts.MAX_FAILURES_PER_IP):
        with pytest.raises(Unauthorized):
            accounts.sign_in(session, f"guess{i}@example.com", "wrong", ip="10.9.9.9")
    with pytest.raises(TooManyAttempts):
        accounts.sign_in(session, "another@example.com", "wrong", ip="10.9.9.9")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/projects/3/label", "/projects/3/label"),
        ("https://evil.example/", "/projects"),
        ("//evil.example/", "/projects"),
        ("/\\evil.example", "/projects"),
        (None, "/projects"),
    ],
)
def test_after_sign_in_only_local_paths(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected
