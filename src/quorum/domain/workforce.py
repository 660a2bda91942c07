"""The workforce: annotator profiles (domains with levels, tier, pay rate) and routing by them.

A profile is the user's ``tier`` (1 to 3), their ``pay_rate_cents`` (what one label of theirs is
worth; unset: the project's ``pay_per_task_cents``) and the domains they know, each with a level
from 1 (some) to 5 (expert). A project's ``required_domains`` (``"medicine"`` or
``"medicine:3"`` for a least level) and ``min_tier`` route its work only to annotators who have
them all: the lease's standing calls anyone else *blocked* (``lease_rules.standing_query``).
The required domains are kept as rows (``project_domains``), written with every policy, so
that check is one join.

Admins manage every profile; a project's owners manage the profiles of its members.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from quorum.db.models import AnnotatorDomain, Membership, ProjectDomain, Role, User
from quorum.domain.errors import Invalid
from quorum.domain.pages import Page, paginate
from quorum.domain.policy import DOMAIN

MAX_DOMAINS = 50
MAX_PAY_RATE_CENTS = 10_000_000
DOMAIN_NAME = "a lower-case name of letters, digits and _ . -"


@dataclass(frozen=True)
class Profile:
    user: User
    domains: dict[str, int]  # name -> level 1..5

    @property
    def tier(self) -> int:
        return self.user.tier

    @property
    def pay_rate_cents(self) -> int | None:
        return self.user.pay_rate_cents


def domains_of(session: Session, user_ids: list[int]) -> dict[int, dict[str, int]]:
    query = (
        select(AnnotatorDomain.user_id, AnnotatorDomain.domain, AnnotatorDomain.level)
        .where(AnnotatorDomain.user_id.in_(user_ids))
        .order_by(AnnotatorDomain.user_id, AnnotatorDomain.domain)
    )
    found: dict[int, dict[str, int]] = {user_id: {} for user_id in user_ids}
    for user_id, domain, level in session.execute(query):
        found[user_id][domain] = level
    return found


def profile(session: Session, user: User) -> Profile:
    return Profile(user, domains_of(session, [user.id])[user.id])


def _domain_name(raw: str) -> str | None:
    """``raw`` as a domain name (trimmed, lower-case), or None if it is not one (a level, as
    the policy's ``medicine:3``, is not part of a name)."""
    name = raw.strip().lower()
    match = DOMAIN.match(name)
    return name if match is not None and match.group(2) is None else None


def clean_domains(domains: Mapping[str, int]) -> dict[str, int]:
    """Domain names as policies write them (lower case) with levels 1 to 5; Invalid otherwise."""
    if len(domains) > MAX_DOMAINS:
        raise Invalid.one("domains", f"at most {MAX_DOMAINS} domains")
    clean: dict[str, int] = {}
    for raw, level in domains.items():
        name = _domain_name(raw)
        if name is None:
            raise Invalid.one(f"domains.{raw}", f"a domain is {DOMAIN_NAME}")
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 5:
            raise Invalid.one(f"domains.{raw}", "a level is a whole number from 1 to 5")
        clean[name] = level
    return clean


def set_profile(
    session: Session,
    user: User,
    *,
    tier: int | None = None,
    pay_rate_cents: int | None = None,
    clear_pay_rate: bool = False,
    domains: Mapping[str, int] | None = None,
) -> Profile:
    """Change what is given (``domains`` replaces the whole set), all or nothing; commits."""
    if tier is not None and not 1 <= tier <= 3:
        raise Invalid.one("tier", "a tier is 1, 2 or 3")
    if pay_rate_cents is not None and not 0 <= pay_rate_cents <= MAX_PAY_RATE_CENTS:
        raise Invalid.one("pay_rate_cents", f"must be between 0 and {MAX_PAY_RATE_CENTS}")
    clean = clean_domains(domains) if domains is not None else None
    if tier is not None:
        user.tier = tier
    if pay_rate_cents is not None or clear_pay_rate:
        user.pay_rate_cents = pay_rate_cents
    if clean is not None:
        session.execute(delete(AnnotatorDomain).where(AnnotatorDomain.user_id == user.id))
        session.add_all(
            AnnotatorDomain(user_id=user.id, domain=name, level=level)
            for name, level in clean.items()
        )
    session.commit()
    return profile(session, user)


def list_profiles(
    session: Session,
    *,
    cursor: str | None,
    limit: int,
    domain: str | None = None,
    min_tier: int | None = None,
) -> Page[Profile]:
    """Every user's profile (keyset pages by user id), optionally those with a domain or tier."""
    query = select(User)
    if domain is not None:
        wanted = _domain_name(domain)
        if wanted is None:
            raise Invalid.one("domain", f"{domain!r} is not a domain name: {DOMAIN_NAME}")
        query = query.where(
            exists().where(AnnotatorDomain.user_id == User.id, AnnotatorDomain.domain == wanted)
        )
    if min_tier is not None:
        query = query.where(User.tier >= min_tier)
    page = paginate(session, query, User.id, cursor, limit)
    known = domains_of(session, [user.id for user in page.items])
    return Page([Profile(user, known[user.id]) for user in page.items], page.next_cursor)


def owns_a_project_of(session: Session, owner: User, member: User) -> bool:
    """Whether ``owner`` owns a project ``member`` belongs to (owners manage their members).

    Never for oneself: an owner is a member of their own projects, and managing their own
    profile would let them raise their own tier and domains."""
    if owner.id == member.id:
        return False
    mine = select(Membership.project_id).where(
        Membership.user_id == owner.id, Membership.role == Role.owner
    )
    query = select(Membership.project_id).where(
        Membership.user_id == member.id, Membership.project_id.in_(mine)
    )
    return session.scalar(query.limit(1)) is not None


def sync_project_domains(session: Session, project_id: int, levels: Mapping[str, int]) -> None:
    """Write the project's required domains as rows (called with every policy it gets)."""
    session.execute(delete(ProjectDomain).where(ProjectDomain.project_id == project_id))
    session.add_all(
        ProjectDomain(project_id=project_id, domain=name, min_level=level)
        for name, level in levels.items()
    )
    session.flush()
