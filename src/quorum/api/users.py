"""Users and API tokens."""

from fastapi import APIRouter, status

from quorum.api.deps import CurrentUser, SessionDep
from quorum.api.schemas import Id, TokenCreate, TokenCreated, TokenPublic, UserCreate, UserPublic
from quorum.domain import policies, users

router = APIRouter(tags=["users"])


@router.get("/me")
def read_me(user: CurrentUser) -> UserPublic:
    """The signed-in user."""
    return UserPublic.model_validate(user)


@router.post("/users", status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, session: SessionDep, user: CurrentUser) -> UserPublic:
    """Create a user (admins only)."""
    policies.authorize(user, policies.is_admin(), "only admins create users")
    created = users.create_user(
        session,
        body.email,
        name=body.name,
        password=body.password,
        is_admin=body.is_admin,
        tier=body.tier,
    )
    return UserPublic.model_validate(created)


@router.get("/tokens")
def list_tokens(session: SessionDep, user: CurrentUser) -> list[TokenPublic]:
    """Your API tokens (the tokens themselves are never shown again)."""
    return [TokenPublic.model_validate(t) for t in users.list_tokens(session, user)]


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def create_token(body: TokenCreate, session: SessionDep, user: CurrentUser) -> TokenCreated:
    """A new API token for yourself; the reply is the only time it is shown."""
    row, token = users.create_token(session, user, body.name)
    return TokenCreated.model_validate(
        {**TokenPublic.model_validate(row).model_dump(), "token": token}
    )


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: Id, session: SessionDep, user: CurrentUser) -> TokenPublic:
    """Revoke one of your tokens; it stops working at once."""
    return TokenPublic.model_validate(users.revoke_token(session, user, token_id))
