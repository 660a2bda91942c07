"""Account administration and password sign-in with rate limiting.

Builds on ``domain.users`` (accounts, passwords, tokens) and only calls its public functions.
Failed sign-ins are rows in the database, so the limit holds across every server process.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from quorum.db.models import ApiToken, Membership, Project, Role, SignInFailure, User
from quorum.db.types import utcnow
from quorum.domain import users
from quorum.domain.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from quorum.domain.pages import Page, paginate

WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
# Generous: a whole office may sign in from one address behind NAT.
MAX_FAILURES_PER_IP = 50
TIERS = (1, 2, 3)


class TooManyAttempts(Forbidden):
    """Too many failed sign-ins for this email or from this address; wait, then try again."""

    code = "too_many_attempts"


def _email_key(email: str) -> str:
    # Counted per address typed, whether or not an account has it: the limit reveals nothing.
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def sign_in(
    session: Session, email: str, password: str, *, ip: str, now: datetime | None = None
) -> User:
    """The user with this email and password; TooManyAttempts before checking when limited.

    Every failure, unknown email included, raises the same Unauthorized message.
    """
    now = now or utcnow()
    key, ip = _email_key(email), ip[:64]
    since = now - WINDOW
    by_email = _failures(session, SignInFailure.email_hash == key, since)
    by_ip = _failures(session, SignInFailure.ip == ip, since)
    if by_email >= MAX_FAILURES_PER_EMAIL or by_ip >= MAX_FAILURES_PER_IP:
        minutes = int(WINDOW.total_seconds() // 60)
        raise TooManyAttempts(f"too many failed sign-ins; try again in {minutes} minutes")
    try:
        user = users.authenticate_password(session, email, password)
    except Unauthorized:
        session.execute(delete(SignInFailure).where(SignInFailure.created_at < since))
        session.add(SignInFailure(email_hash=key, ip=ip, created_at=now))
        session.commit()
        raise
    session.execute(delete(SignInFailure).where(SignInFailure.email_hash == key))
    session.commit()
    return user


def _failures(session: Session, condition: object, since: datetime) -> int:
    query = select(func.count()).where(condition, SignInFailure.created_at >= since)  # type: ignore[arg-type]
    return session.scalar(query) or 0


def session_fingerprint(user: User) -> str:
    """Changes when the password changes, so signing in elsewhere with the old one ends."""
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]


def list_users(session: Session, *, cursor: str | None, limit: int = 200) -> Page[User]:
    return paginate(session, select(User), User.id, cursor, limit)


def create_user(
    session: Session,
    *,
    email: str,
    name: str = "",
    password: str = "",
    is_admin: bool = False,
    tier: int = 1,
) -> User:
    _check_tier(tier)
    return users.create_user(
        session, email, name=name, password=password or None, is_admin=is_admin, tier=tier
    )


def _check_tier(tier: int) -> None:
    if tier not in TIERS:
        raise Invalid.one("tier", f"must be one of {list(TIERS)}")


def set_admin(session: Session, actor: User, target: User, is_admin: bool) -> User:
    if not is_admin and target.id == actor.id:
        raise Conflict("you cannot remove your own admin rights; ask another admin")
    target.is_admin = is_admin
    session.commit()
    return target


def set_active(session: Session, actor: User, target: User, is_active: bool) -> User:
    """Deactivated users cannot sign in, and their sessions and API tokens stop working."""
    if not is_active and target.id == actor.id:
        raise Conflict("you cannot deactivate yourself")
    target.is_active = is_active
    session.commit()
    return target


def set_tier(session: Session, target: User, tier: int) -> User:
    _check_tier(tier)
    target.tier = tier
    session.commit()
    return target


@dataclass(frozen=True)
class RoleInProject:
    project_id: int
    project: str
    role: Role


def roles_of(session: Session, user: User) -> list[RoleInProject]:
    query = (
        select(Project.id, Project.name, Membership.role)
        .join(Membership, Membership.project_id == Project.id)
        .where(Membership.user_id == user.id)
        .order_by(Project.id)
    )
    return [RoleInProject(*row) for row in session.execute(query)]


def member_counts(session: Session, user_ids: Sequence[int]) -> dict[int, int]:
    """How many projects each of these users belongs to, in one query."""
    if not user_ids:
        return {}
    query = (
        select(Membership.user_id, func.count())
        .where(Membership.user_id.in_(user_ids))
        .group_by(Membership.user_id)
    )
    return dict(session.execute(query).all())


def tokens_of(session: Session, user: User) -> list[ApiToken]:
    return users.list_tokens(session, user)


def create_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """A new token for ``user``; the token text is returned this once and never stored."""
    return users.create_token(session, user, name)


def revoke_token(session: Session, actor: User, owner: User, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != owner.id:
        raise NotFound(f"no token {token_id}")
    return users.revoke_token(session, actor, token_id)
