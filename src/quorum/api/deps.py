"""Request-scoped dependencies: the database session and the signed-in user."""

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from quorum.config import Settings
from quorum.db.engine import Database
from quorum.db.models import User
from quorum.domain import users
from quorum.domain.errors import Unauthorized

READ_METHODS = {"GET", "HEAD", "OPTIONS"}
MISSING_TOKEN = "missing API token: send the header 'Authorization: Bearer <token>'"


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; writes begin IMMEDIATE on SQLite (see db.engine)."""
    database = get_database(request)
    with database.session(write=request.method not in READ_METHODS) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


bearer = HTTPBearer(auto_error=False, description="An API token from `quorum token create`")


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> str:
    """The API token of the request; checked by whoever uses it."""
    if credentials is None or not credentials.credentials.strip():
        raise Unauthorized(MISSING_TOKEN)
    return credentials.credentials.strip()


BearerToken = Annotated[str, Depends(bearer_token)]


def token_of(request: Request) -> str:
    """``bearer_token`` for handlers that read the request themselves (declare ``BEARER``)."""
    token = token_in(request.headers.get("authorization", ""))
    if token is None:
        raise Unauthorized(MISSING_TOKEN)
    return token


def token_in(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header's value, or None."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


# The OpenAPI security of an operation that calls ``token_of``.
BEARER: dict[str, Any] = {"security": [{"HTTPBearer": []}]}


def current_user(session: SessionDep, token: BearerToken) -> User:
    return users.authenticate_token(session, token)


CurrentUser = Annotated[User, Depends(current_user)]
