"""What the PostgreSQL statements of the annotation loop share: the caller, compilation.

Each step of the loop (``leases_pg``: lease, reclaim, skip; ``submits_pg``: submit) is one SQL
statement built with SQLAlchemy Core from the shared rules (``lease_rules``), compiled once
for psycopg with its constants written in as literals (``compiled``), and run as raw SQL by a
flow driver (``quorum.db.engine``): in a session, or on the event loop. Here: who is calling
(by API token, or by user id for pages), their token's last use, and the hints a process keeps
to skip a read (``Hints``).
"""

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from functools import cache
from typing import Any

from sqlalchemy import (
    CTE,
    BigInteger,
    Boolean,
    ClauseElement,
    ColumnElement,
    Text,
    and_,
    bindparam,
    func,
    literal_column,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import InstrumentedAttribute

from quorum.db.engine import Statement
from quorum.db.models import (
    ApiToken,
    Assignment,
    Membership,
    Project,
    User,
)
from quorum.domain.lease_rules import (
    EXPIRED,
    LEASED,
    plain_policy,
    reads_task_data,
    schema_from_text,
)
from quorum.domain.policy import DEFAULT_LEASE_SECONDS
from quorum.domain.questions import QuestionSchema

# A token's last use is written at most this often, so reads stay reads.
TOKEN_TOUCH = timedelta(minutes=1)
_DIALECT = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
PROJECT = bindparam("project_id", type_=BigInteger)
USER = bindparam("user_id", type_=BigInteger)
TOKEN = bindparam("token_hash", type_=Text)
ASSIGNMENT = bindparam("assignment_id", type_=BigInteger)
NOW = bindparam("now", type_=Assignment.leased_at.type)
CHECK_EXPIRED = bindparam("check_expired", type_=Boolean)
ADMITTED = bindparam("admitted", type_=Boolean)
KEY = bindparam("key", type_=Text)


@dataclass(frozen=True)
class Token:
    """The caller, known by the SHA-256 of their API token (the REST API)."""

    digest: str


@dataclass(frozen=True)
class UserId:
    """The caller, already signed in (web pages, the CLI, tests)."""

    id: int


Who = Token | UserId


Build = Callable[[bool], ClauseElement]  # by_token -> statement


def statement(build: Build, who: Who, **params: Any) -> Statement:
    sql, constants = compiled(build, isinstance(who, Token))
    caller = {"token_hash": who.digest} if isinstance(who, Token) else {"user_id": who.id}
    return Statement(sql, {**constants, **caller, **params})


@cache
def compiled(build: Build, by_token: bool) -> tuple[str, dict[str, Any]]:
    """The statement's SQL for psycopg, with its constants written in as literals.

    NOTE: psycopg prepares a statement after a few runs and PostgreSQL then plans it once for
    any parameters. A status given as a parameter would hide which partial index applies
    (``WHERE status = 'open'``), so such a generic plan would sort every task of the project;
    with the constants in the text, the generic plan reads ix_tasks_due in order.
    """
    compiled = build(by_token).compile(dialect=_DIALECT)
    sql = compiled.string
    for name, value in compiled.params.items():
        if value is not None:
            sql = sql.replace(f"%({name})s", _literal(value))
    return sql, {}


def _literal(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, tuple) and all(isinstance(part, str) for part in value):
        return "ARRAY[" + ", ".join(_literal(part) for part in value) + "]"  # a JSON path
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"no SQL literal for the constant {value!r}")
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def open_status(status: ColumnElement[str] | InstrumentedAttribute[Any]) -> ColumnElement[bool]:
    """Leased or expired: not yet submitted or skipped. (An OR, not IN: SQLAlchemy renders an
    IN list only when it has the values, and these statements are compiled once, ahead.)"""
    return or_(status == LEASED, status == EXPIRED)


def member(by_token: bool, *, plain: bool = False) -> CTE:
    """The calling member of the project, their token's last use, the project's lease time,
    and whether the project has a budget (``quorum.domain.budget``); for the plain lease also
    the caller's tier and whether the project is plain (``lease_rules.plain_policy``)."""
    stored = Project.policy["lease_seconds"].as_integer()
    lease_seconds = func.coalesce(stored, DEFAULT_LEASE_SECONDS).label("lease_seconds")
    project: tuple[ColumnElement[Any], ...] = (lease_seconds, budgeted().label("budgeted"))
    if by_token:
        # NOTE: the token is looked up on its own, first (a materialized CTE), then the
        # membership by its whole key: written as one join, the planner could start from the
        # project's members and test each one's tokens, a cost that grows with the team (seen:
        # 33 members, 200 buffer reads for every lease).
        holder = (
            select(ApiToken.user_id, ApiToken.last_used_at, User.tier)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == TOKEN, ApiToken.revoked_at.is_(None), User.is_active)
            .cte("holder")
            .prefix_with("MATERIALIZED")
        )
        if plain:
            project += (holder.c.tier, plain_policy(PROJECT).label("plain"))
        query = (
            select(Membership.user_id, holder.c.last_used_at.label("used_at"), *project)
            .select_from(holder)
            .join(Membership, true())
            .where(Membership.user_id == select(holder.c.user_id).scalar_subquery())
        )
    else:
        if plain:
            project += (User.tier.label("tier"), plain_policy(PROJECT).label("plain"))
        query = select(Membership.user_id, null().label("used_at"), *project).where(
            Membership.user_id == USER
        )
        if plain:
            query = query.join(User, User.id == Membership.user_id)
    query = query.join(Project, Project.id == Membership.project_id)
    return query.where(Membership.project_id == PROJECT).cte("me")


def caller(by_token: bool) -> CTE:
    """The calling user (in any project) and their token's last use."""
    if not by_token:
        return select(USER.label("user_id"), null().label("used_at")).cte("me")
    return (
        select(ApiToken.user_id, ApiToken.last_used_at.label("used_at"))
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == TOKEN, ApiToken.revoked_at.is_(None), User.is_active)
        .cte("me")
    )


def _touch_token(_: bool) -> ClauseElement:
    stale = NOW - literal_column("interval '1 minute'")
    return (
        update(ApiToken)
        .where(ApiToken.token_hash == TOKEN)
        .where(or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < stale))
        .values(last_used_at=NOW)
    )


def touch_statement(who: Who, used_at: datetime | None, now: datetime) -> Statement | None:
    """The statement recording a token's use, when its last recorded use is old enough."""
    if not isinstance(who, Token) or (used_at is not None and now - used_at < TOKEN_TOUCH):
        return None
    return statement(_touch_token, who, now=now)


def budgeted() -> ColumnElement[bool]:
    """On ``projects``: whether a budget caps the project's work (``quorum.domain.budget``)."""
    rate = func.coalesce(Project.policy["pay_per_task_cents"].as_integer(), 0)
    return and_(Project.policy["budget_cents"].as_integer().is_not(None), rate > 0)


def hides_gold() -> ColumnElement[bool]:
    """On ``projects``: whether the project mixes in hidden gold (ids are then aliased)."""
    return func.coalesce(Project.policy["gold_rate"].as_float(), 0) > 0


@dataclass(frozen=True)
class Known:
    """A project as a submit's hints know it, at ``version``."""

    project_id: int
    version: datetime
    schema: QuestionSchema
    hides: bool
    pays: bool


class Hints:
    """What this process learnt that lets a submit skip reading: the project of the leases it
    handed out, and the schema (and its version) of projects it saw. Only hints: the statement
    that uses them checks them, and a stale one just costs the usual read."""

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self.projects: OrderedDict[int, int] = OrderedDict()  # assignment -> project
        # project -> (version, schema, whether it hides gold, whether a label earns pay)
        self.schemas: dict[int, tuple[datetime, str, bool, bool]] = {}
        # Projects whose leases need the quality loop's picks (``_lease``, not ``_lease_plain``)
        self.not_plain: set[int] = set()

    def leased(self, assignment_id: int, project_id: int) -> None:
        self.projects[assignment_id] = project_id
        if len(self.projects) > self.size:
            self.projects.popitem(last=False)

    def learnt(
        self, project_id: int, version: datetime, schema_text: str, hides: bool, pays: bool
    ) -> None:
        self.schemas[project_id] = (version, schema_text, hides, pays)

    def known(self, assignment_id: int) -> "Known | None":
        """What this process knows of the assignment's project, if anything (the version is
        checked by the statement: a policy change updates it too)."""
        project_id = self.projects.pop(assignment_id, None)
        found = self.schemas.get(project_id) if project_id is not None else None
        if project_id is None or found is None:
            return None
        schema = schema_from_text(found[1])
        if reads_task_data(schema):
            return None
        return Known(project_id, found[0], schema, hides=found[2], pays=found[3])


HINTS = Hints()
