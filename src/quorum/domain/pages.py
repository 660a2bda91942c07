"""Keyset pagination: a page of rows ordered by id, and the cursor to the next one."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from quorum.domain.errors import Invalid

T = TypeVar("T")
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_cursor: str | None


def parse_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise Invalid.one("cursor", "not a cursor from a previous page")
    return int(cursor)


def paginate(
    session: Session,
    query: Select[T],
    key: InstrumentedAttribute[Any],
    cursor: str | None,
    limit: int,
) -> Page[T]:
    """Rows after ``cursor`` in ascending ``key`` order; ``key`` must be unique (an id)."""
    after = parse_cursor(cursor)
    if after is not None:
        query = query.where(key > after)
    rows: list[T] = list(session.scalars(query.order_by(key).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    last = getattr(rows[-1], key.key) if rows and more else None
    return Page(rows, str(last) if last is not None else None)
