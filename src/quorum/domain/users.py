"""Accounts: users, argon2 passwords, API tokens (random, shown once, stored hashed)."""

import hashlib
import logging
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from quorum.db.models import ApiToken, User
from quorum.db.types import utcnow
from quorum.domain.errors import Conflict, Invalid, NotFound, Unauthorized
from quorum.domain.text import refuse_nul

log = logging.getLogger(__name__)

TOKEN_PREFIX = "qrm_"
# Writing last_used_at on every request would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)

_hasher = PasswordHasher()
# NOTE: verifying against a dummy hash when the email is unknown keeps the response time
# the same, so timing does not tell which emails exist.
_DUMMY_HASH = _hasher.hash("not-a-password")


def normalize_email(email: str) -> str:
    refuse_nul(email, "email")
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > 320 or any(c.isspace() for c in email):
        raise Invalid.one("email", f"{email!r} is not an email address")
    return email


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise Invalid.one("password", "must have at least 8 characters")
    return _hasher.hash(password)


def create_user(
    session: Session,
    email: str,
    *,
    name: str = "",
    password: str | None = None,
    is_admin: bool = False,
    tier: int = 1,
) -> User:
    refuse_nul(name, "name")
    user = User(
        email=normalize_email(email),
        name=name.strip() or email.split("@")[0],
        password_hash=hash_password(password) if password is not None else None,
        is_admin=is_admin,
        is_active=True,
        pseudonym="a_" + secrets.token_hex(6),
        tier=tier,
        created_at=utcnow(),
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"a user with email {user.email} already exists") from None
    session.commit()
    return user


def get_by_email(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None:
        raise NotFound(f"no user with email {email.strip().lower()}")
    return user


def get(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


def authenticate_password(session: Session, email: str, password: str) -> User:
    """The active user with this email and password; one message for every failure."""
    # NOTE: no account's email holds a NUL (normalize_email refuses it), and PostgreSQL's text
    # cannot even compare with one: such an email is just a wrong one.
    wanted = email.strip().lower()
    user = None if "\x00" in wanted else session.scalar(select(User).where(User.email == wanted))
    try:
        _hasher.verify(user.password_hash if user and user.password_hash else _DUMMY_HASH, password)
    except (VerifyMismatchError, InvalidHashError):
        user = None
    if user is None or not user.is_active or not user.password_hash:
        raise Unauthorized("wrong email or password")
    return user


def set_password(session: Session, user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    session.commit()


def token_digest(token: str) -> str:
    """What is stored of a token, and looked up: its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, user: User, name: str = "") -> tuple[ApiToken, str]:
    """A new token row and the token itself, which is not stored and cannot be shown again."""
    refuse_nul(name, "name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name.strip()[:200],
        token_hash=token_digest(token),
        prefix=token[:10],
        created_at=utcnow(),
    )
    session.add(row)
    session.commit()
    return row, token


def authenticate_token(session: Session, token: str, *, now: datetime | None = None) -> User:
    now = now or utcnow()
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_digest(token)))
    if row is None or row.revoked_at is not None or not row.user.is_active:
        raise Unauthorized("invalid or revoked API token")
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        _touch(session, row, now)
    return row.user


def _touch(session: Session, row: ApiToken, now: datetime) -> None:
    """Note when the token was used, if the database lets this transaction write now.

    NOTE: on SQLite a read transaction that turns writer while another connection writes (a
    submit, the quality loop's thread) fails at once with "database is locked", without
    waiting: its snapshot may be stale. The time of last use is bookkeeping, not worth
    failing the request for; the next request records it.
    """
    try:
        with session.begin_nested():
            row.last_used_at = now
    except OperationalError as error:
        log.debug("token %s: last use not recorded (%s)", row.id, error.orig)


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    return list(session.scalars(query))


def revoke_token(session: Session, user: User, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None or (row.user_id != user.id and not user.is_admin):
        raise NotFound(f"no token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.commit()
    return row
