"""What a flow yields and receives: raw SQL statements and their rows (``quorum.db.engine``)."""

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class Statement:
    """One raw SQL statement of a flow, in psycopg's ``%(name)s`` style, with its parameters.

    ``group_key``: set when the statement may share a durable transaction with others
    (``quorum.db.group_commit``): it is a unit of work on its own, and the key orders the
    rows it locks that other members may lock too.
    """

    sql: str
    params: Mapping[str, Any]
    group_key: int | None = None


Flow = Generator[Statement, Rows, T]
