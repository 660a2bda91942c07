"""The workforce: annotator profiles (domains with levels, tier, pay rate) (docs/quality.md)."""

from typing import Annotated

from fastapi import APIRouter, Query

from quorum.api.deps import CurrentUser, SessionDep
from quorum.api.quality_schemas import ProfilePublic, ProfileUpdate
from quorum.api.schemas import Cursor, Id, Limit, ListOf
from quorum.domain import policies, users, workforce

router = APIRouter(tags=["workforce"])


@router.get("/me/profile")
def read_my_profile(session: SessionDep, user: CurrentUser) -> ProfilePublic:
    """Your own profile: tier, pay rate and domains."""
    return ProfilePublic.of(workforce.profile(session, user))


@router.get("/users/{user_id}/profile")
def read_profile(user_id: Id, session: SessionDep, user: CurrentUser) -> ProfilePublic:
    """A profile (admins; owners of a project the user belongs to; the user themselves)."""
    member = users.get(session, user_id)
    owns = workforce.owns_a_project_of(session, user, member)
    policies.reveal(user, policies.can_see_profile_of(member, owns), f"user {user_id}")
    return ProfilePublic.of(workforce.profile(session, member))


@router.patch("/users/{user_id}/profile")
def update_profile(
    user_id: Id, body: ProfileUpdate, session: SessionDep, user: CurrentUser
) -> ProfilePublic:
    """Change a profile, all or nothing: tier and domains (admins, and owners of a project the
    user belongs to), pay rate (admins). ``domains`` replaces the whole set."""
    member = users.get(session, user_id)
    owns = workforce.owns_a_project_of(session, user, member)  # never for oneself
    policies.reveal(user, policies.can_see_profile_of(member, owns), f"user {user_id}")
    policies.authorize(
        user, policies.can_manage_profile_of(owns), "only admins and owners manage profiles"
    )
    changes = body.model_dump(exclude_unset=True)
    if "pay_rate_cents" in changes:
        policies.authorize(user, policies.can_set_pay_rate(), "only admins set pay rates")
    found = workforce.set_profile(
        session,
        member,
        tier=changes.get("tier"),
        pay_rate_cents=changes.get("pay_rate_cents"),
        clear_pay_rate="pay_rate_cents" in changes and changes["pay_rate_cents"] is None,
        domains=changes.get("domains"),
    )
    return ProfilePublic.of(found)


@router.get("/workforce")
def list_workforce(
    session: SessionDep,
    user: CurrentUser,
    cursor: Cursor = None,
    limit: Limit = 100,
    domain: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    min_tier: Annotated[int | None, Query(ge=1, le=3)] = None,
) -> ListOf[ProfilePublic]:
    """Every user's profile in id order (admins), optionally those who know ``domain`` or are
    of ``min_tier`` or above."""
    policies.authorize(user, policies.can_list_workforce(), "only admins list the workforce")
    page = workforce.list_profiles(
        session, cursor=cursor, limit=limit, domain=domain, min_tier=min_tier
    )
    return ListOf[ProfilePublic](
        items=[ProfilePublic.of(p) for p in page.items], next_cursor=page.next_cursor
    )
